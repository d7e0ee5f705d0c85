"""Self-authored training phrases for the statistical part of the utterance classifier.

This module owns the *training corpus* of :mod:`dialog.phrase_model`: hand-written templates and
slot fillers, expanded deterministically (seeded) into a few thousand labelled utterances in the
judge's ASR form (lowercase, no punctuation, no apostrophes). Every template and filler was written
by the carecoach authors from general knowledge of how people talk to customer-service lines, post
about products on social media and argue or chat in everyday life. Nothing was taken from any
evaluation corpus. Licence: same as the project (Apache-2.0); the authors also dedicate the
phrases to the public domain (CC0-1.0) so they may be reused freely.

Labels follow CONTRACT §4: ``venting`` = voicing frustration, anger, disgust or a grievance
(including a complaint about a product or service, even when phrased as a question); ``question`` =
asking for information or help; ``other`` = anything else (statements, answers, greetings,
thanks, directives, neutral or happy talk, misfortune told without a grievance).
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterator

# --- slot fillers --------------------------------------------------------------------------

SLOTS: dict[str, list[str]] = {
    "company": """you guys|your company|this company|your airline|this airline|your bank|my bank|the bank|
        my internet provider|my phone company|the phone company|your store|this shop|the cable company|
        my energy supplier|the gas company|your delivery company|the courier|your app|the council|
        my landlord|the insurance company|my broadband provider|the railway|the hotel|the restaurant|
        this website|your support team|customer support|the help desk|the call centre""".split("|"),
    "brand": """acme|globotel|skyline air|northrail|fastnet|bluebank|shopmart|quickpost|zenphone|
        metrogas|brightpower|cloudbox|streamflix|cityhotels|redline buses|pixelcam|homehub|
        speedway broadband|unitycell|parcelnow""".split("|"),
    "product": """phone|laptop|router|tv|television|printer|washing machine|fridge|dishwasher|tablet|
        headphones|charger|camera|car|boiler|modem|app|account|card|order|parcel|package|delivery|
        subscription|internet|broadband|wifi|connection|landline|line|bill|invoice|refund|booking|
        reservation|flight|ticket|seat|room|suitcase|bag|coffee machine|oven|heater|watch|speaker|
        microwave|vacuum|software|update|website|password|email|account|meter|sofa|mattress|shoes|
        jacket|order|replacement|engineer appointment|contract|plan|sim card""".split("|"),
    "failure": """stopped working|doesnt work|wont turn on|keeps crashing|keeps freezing|broke|is broken|
        arrived broken|arrived damaged|never arrived|still hasnt arrived|is missing|got lost|
        went missing|keeps dropping|keeps cutting out|wont connect|wont charge|wont load|is down again|
        has been down all day|is so slow|was cancelled|got cancelled|was delayed|is delayed again|
        was double charged|charged me twice|is wrong again|is still not fixed|died after a week|
        fell apart|is faulty|is leaking|is making a horrible noise|overheats|keeps restarting|
        keeps logging me out|wont let me log in|wont accept my card|is still showing the old balance|
        was sent to the wrong address|was left out in the rain|came with parts missing""".split("|"),
    "duration": """for three days|for two weeks|for a month|since monday|since last week|for hours|
        all weekend|for over an hour|for six weeks now|for ages|since january|for the third day running|
        all day|for forty minutes|for nearly two months|this whole week""".split("|"),
    "times": """second|third|fourth|fifth|tenth|umpteenth""".split("|"),
    "neg_adj": """ridiculous|unacceptable|a joke|pathetic|disgusting|shocking|appalling|terrible|awful|
        useless|a disgrace|beyond frustrating|so annoying|a nightmare|infuriating|absurd|insane|
        outrageous|embarrassing|rubbish|the worst""".split("|"),
    "feeling": """so frustrated|really annoyed|fed up|sick of this|furious|absolutely livid|so angry|
        really upset|very disappointed|fuming|done with this|at the end of my tether|losing my patience|
        beyond annoyed|tired of this|not happy at all""".split("|"),
    "threat": """im cancelling my contract|im switching to another provider|i want a full refund|
        im never using you again|im taking my business elsewhere|ill be leaving a review|
        i want to speak to a manager|im going to report you|ill be contacting the ombudsman|
        im closing my account|dont bother calling me again|ill take this to small claims court""".split("|"),
    "person_bad": """you never listen to me|you always do this|you promised me|you lied to me|
        you ruined everything|you embarrassed me in front of everyone|you broke it again|
        you forgot my birthday again|you left the kitchen in a mess again|you ate my lunch again|
        you didnt even call|you took my car without asking|you were late again|you read my messages|
        you told everyone my secret""".split("|"),
    "disgust": """that smells disgusting|this food is revolting|that is so gross|ugh that is vile|
        this place is filthy|theres hair in my soup|the toilets were filthy|the milk has gone off and
        they still sold it|there was a cockroach in the room|the sheets were stained|
        this tastes like cardboard|the whole bus stank""".split("|"),
    "info_target": """my balance|the opening hours|the delivery date|my account number|the price|the cost|
        the new plan|my order status|the refund policy|the returns policy|the tracking number|
        the departure time|the check in time|the address|the total|my contract end date|the fee|
        the interest rate|the baggage allowance|the warranty|the postcode|the reference number|
        the next available appointment|the cheapest option|the difference between the two plans""".split("|"),
    "action": """change my address|upgrade my plan|cancel my order|book a table|pay my bill|
        reset my password|add another user|return these shoes|transfer money abroad|move my appointment|
        get a copy of my bill|set up a direct debit|port my number|track my parcel|add a bag|
        change my seat|extend my stay|update my card details|order a replacement card|
        get a receipt""".split("|"),
    "time": """today|tomorrow|on friday|next week|this morning|tonight|on the weekend|at the moment|
        right now|later|in the morning|by the end of the month""".split("|"),
    "thing": """the weather|the match|your trip|the new job|the party|the film|the concert|the exam|
        the interview|your holiday|the wedding|dinner|the meeting|your weekend|the new flat|
        the book|the class|the game""".split("|"),
    "activity": """go to the cinema|have lunch|go for a walk|play tennis|get a coffee|watch a film|
        go shopping|visit my parents|study together|go swimming|have dinner out|try the new cafe|
        go to the beach|take a taxi|catch the bus""".split("|"),
    "detail": """name|full name|address|postcode|date of birth|account number|phone number|
        email address|reference number|order number|card number|customer number|booking reference|
        first line of the address|surname""".split("|"),
    "good_adj": """great|fantastic|brilliant|amazing|lovely|excellent|really helpful|super quick|
        perfect|wonderful|so easy|spot on""".split("|"),
    "staff": """the agent|the driver|the engineer|the waiter|the receptionist|the manager|
        the man on the phone|the woman at the desk|your staff|the cashier|the technician|the guard|
        the flight attendant|the delivery driver""".split("|"),
    "staff_bad": """was so rude to me|hung up on me|laughed at me|ignored me|was rude and unhelpful|
        didnt have a clue|shouted at me|refused to help|lied to my face|just walked off|
        told me it wasnt their problem|kept me waiting for an hour|treated me like an idiot""".split("|"),
    "misfortune": """i lost my keys|i missed the bus|i dropped my phone|i caught a cold|
        my car broke down on the motorway|i failed my driving test|it rained all weekend|
        i spilled coffee on my shirt|the train was late this morning|i forgot my umbrella|
        i burned the toast|i overslept|my team lost again|i cut my finger""".split("|"),
    "fact": """my account number is four five six|i live at twelve high street|the order was placed
        on monday|i paid by card|i bought it last month|its the black one|i have two phones on the
        plan|my postcode is one two three|the reference is abc one two three|i called yesterday|
        it was about forty pounds|i booked it online|my name is john smith|the flight is at six|
        the router is in the living room|its a samsung|i moved house last year|we have three children|
        i work in the city centre|i usually pay by direct debit""".split("|"),
    "report": """ordered {product} on monday and its still not here|my {product} was supposed to come
        yesterday and nothing|tracking says delivered but no parcel|the {product} i got is the wrong colour|
        my {product} screen went black after the update|the update wiped all my settings|
        the new {product} drains the battery in two hours|i got charged a cancellation fee i never agreed to|
        my refund went to an old card|my points disappeared from my account|the promo code doesnt work at
        checkout|the price went up the day after i bought it|they billed me for a month after i cancelled|
        my {product} shows offline even though the light is green|the app says my card is invalid|
        my {product} only lasted three months|the seat i paid extra for was given to someone else|
        they moved my flight and didnt tell me|the train was so packed we couldnt get on|
        the driver didnt stop at my stop|my order came with half the items|the box was soaked and torn|
        the hotel gave away our room|the heating in the room doesnt work|been trying to cancel for weeks|
        been bounced between departments all morning|my complaint was closed without a reply|
        the chat bot just goes round in circles|the website logs me out every five minutes|
        still showing the wrong balance on my account|speeds are a fraction of what i pay for|
        the engineer turned up and left without fixing anything|
        they sent a bill for a service i dont have""".split("|"),
    "negative_life": """i have a terrible headache|my grandmother is in hospital|im so tired today|
        i failed my maths exam|im worried about the interview|it was a sad film|
        the news about the earthquake is awful|i feel sick|my dog died last year|
        i lost my job last month|i broke my leg skiing|the traffic was horrible this morning|
        its freezing outside|the exam was really hard|i didnt sleep well|im a bit nervous|
        i miss my family|the team played badly last night|that was a scary movie|
        the economy is in a bad way|the weather has been awful all week""".split("|"),
    "grievance_plain": """my order was meant to come on tuesday and there is still no sign of it|
        paid for two tickets and only got one|the {product} you sold me lasted a month|
        your app logs me out every time i open it|my {product} has been showing an error since the update|
        the {product} turned up with a dent in it|the {product} switches itself off after ten minutes|
        i was told someone would ring me back and no one did|the price on the shelf was not the price at the till|
        my card was charged but the order says failed|i have sent three emails and had no answer|
        the queue on your helpline is over an hour|the chat closed before anyone answered|
        the bus drove straight past the stop|the train was cancelled with no notice|
        half my shopping was missing from the delivery|they substituted everything in my order|
        the courier said nobody was home but i was in all day|my {product} is making a clicking noise again|
        the portal wont accept my password even after a reset|my account got locked for no reason|
        the refund was promised in five days and its been three weeks|my {product} only charges to half|
        the speeds i get are nowhere near what i pay for|i got a letter saying i owe money i already paid|
        the room we booked was given away|we waited an hour for a table we had reserved|
        my parcel has been in the depot for a week|the tracking hasnt moved since friday|
        your site keeps timing out at checkout|the update made my {product} slower|
        two months and my {product} still isnt repaired|the replacement is faulty as well|
        you sent the same wrong size twice|the coupon you emailed me doesnt work|
        the engineer never showed up for the appointment|i was kept on hold and then cut off|
        the product looks nothing like the picture|the seats were filthy and the toilet was out of order|
        i keep getting bills for an account i closed|my flight got moved and i only found out at the airport|
        the food arrived cold and an hour late|my money has left my account but the payment shows pending""".split("|"),
    "grievance_question": """why does my {product} keep turning itself off|how long does it take to get a simple refund|
        why has my bill gone up again|why is nobody answering the phone|when will my {product} actually work|
        how is it still not fixed|why was i charged twice|why do i have to pay for your mistake|
        where is my order i paid for next day delivery|why did you cancel my order without telling me|
        is anyone going to reply to my email|why is the app down again|how many more days do i have to wait|
        why is the {product} so slow since the update|when are you going to refund me|
        what is the point of express delivery if it takes a week|why cant i log in to my account|
        is it normal for a new {product} to break in a week|why does the website never work|
        how hard can it be to deliver a parcel""".split("|"),
    "broken_promise": """said it would be here yesterday|promised me a call back|told me it was fixed|
        said the refund was on its way|promised a replacement weeks ago|said there would be no charge|
        told me the engineer was booked|said my complaint was escalated""".split("|"),
    "tweet_neutral": """just ordered a new {product} from {brand}|cant wait for my {product} to arrive|
        loving the new {product}|great service from {brand} today|thanks {brand} for sorting my {product} so quickly|
        {brand} do you have this jacket in blue|is the {brand} sale on in store as well|
        anyone know if {brand} delivers on sundays|does {brand} price match|
        what time does {brand} open on bank holidays|
        my {product} arrived early thanks|{brand} the new store looks great|watching the game tonight|
        this weather is mad|happy new year everyone|monday mornings are the worst haha|
        cant believe how fast this year went|my cat just knocked my coffee over|
        traffic is terrible today hope everyone gets home safe|the new episode was so good|
        cant decide what to have for dinner|this song is stuck in my head|
        {brand} is giving away free coffee today|just finished a ten mile run|
        who else is watching the match""".split("|"),
    "opinion": """the new season of that show is the worst one yet|that referee was terrible|
        the villain in that film was horrible but brilliant|politics is such a mess right now|
        this song is so bad its good|my cat hates the vacuum|kids hate broccoli|
        that team are the worst in the league|the ending of the book was awful|
        honestly the sequel was a disaster|the old version was so much better""".split("|"),
}

_SLOT = re.compile(r"\{(\w+)\}")

# --- templates ------------------------------------------------------------------------------
# Each entry: (label, template). Slots are filled at random; a template without slots is used once.

VENTING = [
    # product/service failure + stance
    "my {product} {failure} {duration} and nobody has fixed it",
    "my {product} {failure} {duration} this is {neg_adj}",
    "{brand} my {product} {failure} again",
    "{brand} my {product} {failure} {duration} and no one will help",
    "{product} {failure} again {neg_adj}",
    "{brand} your {product} {failure} and i am {feeling}",
    "so my {product} {failure} and {company} wont do anything about it",
    "third week in a row my {product} {failure}",
    "this is the {times} time my {product} {failure}",
    "this is the {times} time ive called about this",
    "this is the {times} time ive had to chase my refund",
    "i have called {times} times and my {product} still {failure}",
    "ive been on hold {duration} and still no answer",
    "been waiting {duration} for a reply from {company}",
    "still waiting for my refund from {brand} {duration}",
    "still no sign of my {product} {duration} {company} is {neg_adj}",
    "i have been waiting {duration} for an engineer and nobody turned up",
    "no internet {duration} and {company} keeps giving me excuses",
    "no signal {duration} and im still paying full price",
    "paid for next day delivery and its been a week",
    "{brand} charged me twice for the same {product} and wont refund me",
    "you charged me for a {product} i never ordered",
    "you took money out of my account without asking",
    "i was overcharged again on my {product}",
    "why is my {product} still not working {duration}",
    "why does my {product} keep crashing every time i open it",
    "why do i have to call {times} times to get anything done",
    "why cant you just fix my {product}",
    "why has nobody called me back",
    "why is it so hard to get a simple refund",
    "how many times do i have to explain this",
    "how hard is it to deliver a {product} on time",
    "how is it acceptable that my {product} {failure} {duration}",
    "where is my {product} its been {duration}",
    "where is my refund you promised it last week",
    "when are you actually going to fix my {product}",
    "what is wrong with {company}",
    "are you kidding me my {product} {failure} again",
    "seriously {brand} my {product} {failure} again",
    "is anyone at {company} going to answer me or not",
    "does anyone at {brand} actually read these messages",
    "{company} is {neg_adj}",
    "{company} are {neg_adj}",
    "{brand} is {neg_adj} {duration} without a working {product}",
    "honestly {company} is the worst ive ever dealt with",
    "worst customer service ever",
    "worst experience ive ever had with {company}",
    "never buying from {brand} again",
    "never flying with {brand} again",
    "never again {brand}",
    "{threat}",
    "{threat} this is {neg_adj}",
    "if my {product} isnt fixed today {threat}",
    "i am {feeling} with {company}",
    "im {feeling} with this {product}",
    "i am {feeling} my {product} {failure}",
    "im {feeling} nobody at {company} seems to care",
    "im so sick of {company} and their excuses",
    "i cant believe my {product} {failure} again",
    "i cant believe how {neg_adj} this service is",
    "i cant believe you charged me again",
    "{staff} {staff_bad}",
    "{staff} {staff_bad} and i want an apology",
    "your staff are {neg_adj}",
    "your customer service is {neg_adj}",
    "your website is {neg_adj} it keeps crashing",
    "your app is {neg_adj} since the last update",
    "thanks for nothing {brand}",
    "thanks {brand} for ruining my weekend",
    "great job {brand} my {product} {failure} again",
    "well done {brand} another {product} that {failure}",
    "love how my {product} {failure} {duration}",
    "love it when {brand} cancels my {product} without telling me",
    "nothing like a {product} that {failure} to start the day",
    "oh great my {product} {failure} again just what i needed",
    "so glad i pay {brand} every month for a {product} that {failure}",
    "thanks for the amazing service {brand} said no one ever",
    "i pay for fast broadband and get dial up speeds",
    "paying premium prices for rubbish service",
    "four hours on hold just to be cut off",
    "cut off again after an hour on hold",
    "promised a call back and nobody called",
    "you promised me a refund and i still havent got it",
    "you keep telling me different things every time i call",
    "every time i call i get a different answer",
    "nobody can give me a straight answer",
    "nobody at {company} knows what they are doing",
    "i have been passed around {times} departments",
    "i was told it would be fixed and it wasnt",
    "i want my money back",
    "just give me my money back",
    "the {product} is rubbish and so is your service",
    "what a waste of money this {product} is",
    "complete waste of my time",
    "this has been going on {duration}",
    "this is ridiculous i have been waiting {duration}",
    "this is not good enough",
    "its not good enough i pay my bill on time",
    "this is daylight robbery",
    "it is a total rip off",
    "this is a scam",
    "{brand} stole my money",
    "they lost my {product} and now they wont answer",
    "they cancelled my {product} and didnt even tell me",
    "my {product} got damaged because the courier threw it over the fence",
    "the parcel was left in the rain and everything is ruined",
    "the flight was delayed {duration} and not a word from {brand}",
    "stuck at the airport {duration} and {brand} wont tell us anything",
    "my bags are lost and {brand} doesnt care",
    "booked a room with a sea view and got a car park",
    "the room was filthy and the staff didnt care",
    "{disgust}",
    "{disgust} im never coming back",
    "ugh {disgust}",
    "yuck {disgust}",
    "they sent me the wrong {product} again",
    "got the wrong {product} and now they want me to pay for the return",
    "my bill went up again without any warning",
    "huge bill again and nobody can explain it",
    "i keep getting charged for things i cancelled",
    "keeps saying error every time i try to pay",
    "the app keeps logging me out and its driving me mad",
    "its driving me crazy",
    "this is driving me up the wall",
    "you are driving me nuts",
    "i have had enough",
    "ive had it with {company}",
    "enough is enough",
    "what a joke",
    "what a shambles",
    "what a rip off",
    "absolute joke",
    "typical {brand} broken again",
    "typical cancelled again",
    "of course its broken again",
    "here we go again another outage",
    "another day another outage",
    "another delay unbelievable",
    # tweet-style problem reports: a grievance without any anger word
    "{report}",
    "{brand} {report}",
    "{report} {brand}",
    "hey {brand} {report}",
    "{report} thanks {brand}",
    "{report} what is going on",
    "{report} any help",
    "{report} can someone look into this",
    "{brand} {report} can you sort this out",
    "{report} not impressed",
    "{report} so much for customer service",
    "{report} again",
    "{brand} why is my {product} {failure}",
    "{brand} why does this keep happening",
    "{brand} why havent i had my refund yet",
    "{brand} where is my {product}",
    "{brand} when will my {product} actually be fixed",
    "{brand} is it too much to ask for a {product} that works",
    "{brand} any reason my {product} {failure}",
    "{brand} please explain why i was charged twice",
    "{brand} can anyone tell me why my {product} {failure}",
    "{brand} how do i get a refund for a {product} that {failure}",
    "{brand} what is the point of paying for {product} that {failure}",
    # everyday anger / disgust between people
    "{person_bad}",
    "{person_bad} im so angry with you",
    "{person_bad} i cant believe you",
    "how could you do that to me",
    "how dare you speak to me like that",
    "how dare you go through my things",
    "dont you dare touch my stuff",
    "get out of my room",
    "leave me alone",
    "shut up and listen",
    "stop it right now youre annoying me",
    "what were you thinking",
    "what the hell is wrong with you",
    "what the hell did you do to my car",
    "are you out of your mind",
    "are you stupid or something",
    "you idiot you broke it",
    "you are so selfish",
    "you make me sick",
    "i hate you",
    "i hate it when you do that",
    "i hate this stupid {product}",
    "i really hate waiting in long queues",
    "im so mad at you right now",
    "im really angry about what happened",
    "that is so unfair",
    "its not fair you always get your way",
    "this is the last straw",
    "i wont put up with this any more",
    "thats it im done",
    "give me a break",
    "oh come on not again",
    "come on this is taking forever",
    "for goodness sake hurry up",
    "damn it i missed it again",
    "damn this stupid {product}",
    "the neighbours were playing loud music until three in the morning again",
    "my boss made me stay late again for nothing",
    "that waiter was so rude i want to complain",
    "i cant stand people who jump the queue",
    "i cant stand this noise any longer",
    "i am sick and tired of your excuses",
    "youre always late and i am tired of it",
    "why do you always have to ruin everything",
    "why didnt you tell me you idiot",
    "why would you do something so stupid",
    "that is disgusting i cant eat this",
    "this restaurant is a disgrace",
    "the service here is terrible ive been waiting an hour for my food",
    "this is the worst meal ive ever had",
    "you call this a hotel",
    "you call this customer service",
    # complaints to a company told flatly: an expectation broken, no anger word needed
    "{brand} {grievance_plain}",
    "{grievance_plain}",
    "{grievance_plain} {brand}",
    "hey {brand} {grievance_plain}",
    "{grievance_plain} please sort it out",
    "{grievance_plain} can someone help",
    "{grievance_plain} help",
    "{grievance_plain} what do i do now",
    "{grievance_plain} why",
    "{grievance_plain} and nobody has replied",
    "{grievance_plain} is this normal",
    "{brand} {grievance_question}",
    "{grievance_question}",
    "hey {brand} {grievance_question}",
    "{grievance_question} {brand}",
    "{brand} you {broken_promise}",
    "you {broken_promise}",
    "{company} {broken_promise}",
]

QUESTION = [
    # customer info questions, calls
    "can you tell me {info_target}",
    "could you tell me {info_target} please",
    "what is {info_target}",
    "whats {info_target}",
    "do you know {info_target}",
    "i was wondering what {info_target} is",
    "i would like to know {info_target}",
    "id like to know {info_target}",
    "can you check {info_target} for me",
    "could you confirm {info_target}",
    "how do i {action}",
    "how can i {action}",
    "can i {action}",
    "can i {action} {time}",
    "is it possible to {action}",
    "is there a way to {action}",
    "would it be possible to {action} {time}",
    "could i {action} please",
    "do i need to {action}",
    "what do i need to {action}",
    "what do i need to do to {action}",
    "where do i go to {action}",
    "who do i speak to about {info_target}",
    "when will my {product} arrive",
    "when is my {product} due",
    "when does {info_target} change",
    "how long will the {product} take",
    "how long does it take to {action}",
    "how much does it cost to {action}",
    "how much is {info_target}",
    "how much would the new plan be",
    "which plan would you recommend",
    "which one is cheaper",
    "is there a charge for that",
    "is there a fee to {action}",
    "is the {product} covered by the warranty",
    "is my {product} still under warranty",
    "does the price include delivery",
    "does that include tax",
    "do you deliver on sundays",
    "do you have this in a bigger size",
    "do you have any rooms available {time}",
    "are you open {time}",
    "are there any seats left",
    "will i get a confirmation email",
    "will that affect my credit score",
    "will it be ready {time}",
    "would that be cheaper",
    "should i turn the {product} off and on again",
    "have you received my payment",
    "has my {product} been sent yet",
    "did you get my email",
    "did the payment go through",
    "what happens if i miss a payment",
    "what time does the shop close",
    "what time do you open {time}",
    "what are your opening hours",
    "what options do i have",
    "what should i do next",
    "what would you suggest",
    "what number should i call",
    "where can i find {info_target}",
    "where is the nearest branch",
    "why is there an extra charge on my bill",
    "why did my payment go up this month",
    "which button do i press",
    "who am i speaking to",
    "any idea when it will be back",
    "any news on my {product}",
    "any update on {info_target}",
    "so the engineer is coming {time} then",
    "so that will be sorted {time} right",
    "and that includes delivery yeah",
    "you can do that for me can you",
    "its included in the price isnt it",
    "that wont cost anything will it",
    "the refund goes back on my card doesnt it",
    "is that right",
    "is that okay",
    "is that everything",
    "right or not",
    "sorry what was that",
    "sorry can you repeat that",
    "pardon",
    "sorry say that again",
    "what do you mean",
    "you mean the black one",
    "meaning what exactly",
    "how come it costs more now",
    "i need to know if my {product} has been sent",
    "just wanted to check if {info_target} has changed",
    "i was just wondering if you could help me with my {product}",
    "could you help me {action}",
    "can you help me {action}",
    "i need some help with my {product}",
    "please advise how to {action}",
    "hi {brand} how do i {action}",
    "hey {brand} can i {action} online",
    "{brand} is there any way to {action}",
    "{brand} do you know when {info_target} will be updated",
    "quick question about my {product}",
    "quick question do you ship abroad",
    "any chance i could {action} {time}",
    "what about the other one",
    "and what about the delivery",
    "or would it be better to {action}",
    # questions about problems without a grievance
    "what should i do if my {product} {failure}",
    "how do i reset my {product}",
    "is there a known issue with the {product}",
    "do you have any problems with your {product}",
    "whats the problem with it",
    "which part of the order went wrong for you",
    "how can i make a complaint",
    "where can i send feedback",
    # agents asking
    "how can i help you today",
    "how may i help",
    "what can i do for you",
    "can i take your {detail} please",
    "could i have your {detail} please",
    "can i have your {detail}",
    "could you confirm your {detail} for me",
    "can you just confirm your {detail}",
    "just confirm your {detail} for me please",
    "and your {detail} please",
    "whats your {detail}",
    "what is the {detail} on the account",
    "and the {detail}",
    "can you spell that for me",
    "is that the {detail} on the account",
    "are you the account holder",
    "have you tried restarting the {product}",
    "have you tried turning it off and on",
    "is the light on the router green",
    "are you calling about your {product}",
    "is there anything else i can help with",
    "anything else today",
    "would you like me to {action} for you",
    "do you want me to send you a text",
    "shall i book that for you",
    "is this a good number to reach you on",
    "when did the problem start",
    "how long has it been doing that",
    "which {product} is it",
    "what seems to be the problem",
    "whats the issue with the {product}",
    # everyday chat questions
    "how was {thing}",
    "how did {thing} go",
    "did you enjoy {thing}",
    "what did you think of {thing}",
    "are you free {time}",
    "do you want to {activity} {time}",
    "would you like to {activity}",
    "shall we {activity} {time}",
    "why dont we {activity} {time}",
    "how about we {activity}",
    "what are you doing {time}",
    "where are you going {time}",
    "where did you buy that",
    "when did you get back",
    "how long have you lived here",
    "how old is your sister",
    "what do you do for a living",
    "have you ever been to paris",
    "have you seen my keys",
    "did you hear about the new cafe",
    "do you like spicy food",
    "can you swim",
    "is it going to rain {time}",
    "what time is it",
    "whose bag is this",
    "what kind of music do you like",
    "you coming tonight",
    "you ok",
    "you alright",
    "really",
    "are you sure",
    "is that true",
    "and then what happened",
    "what do you think",
    "what would you do",
    "which one do you prefer",
    "do you mind if i sit here",
    "is this seat taken",
    "how much did that cost you",
    "why did you decide to move",
    "so what did the doctor say",
    "you know what i mean",
    "did you",
    "was it",
    "how so",
    "like what",
    "such as",
    "how about you",
    "what about you",
    "and you",
]

OTHER = [
    # answers, facts, acknowledgements
    "{fact}",
    "yes {fact}",
    "um {fact}",
    "okay {fact}",
    "its {detail} you need",
    "yes please",
    "no thank you",
    "yes thats right",
    "thats correct",
    "yeah thats it",
    "no thats not right",
    "okay",
    "okay great",
    "right",
    "alright then",
    "sure",
    "sure no problem",
    "fine",
    "thats fine",
    "that sounds good",
    "perfect thank you",
    "thank you so much",
    "thanks for your help",
    "thanks for sorting that out",
    "cheers",
    "brilliant thanks",
    "lovely thank you very much",
    "thank you bye",
    "okay bye bye",
    "have a nice day",
    "have a good weekend",
    "you too",
    "take care",
    "goodbye",
    "see you later",
    "hello",
    "hi there",
    "hello good morning",
    "good afternoon",
    "hi im calling about my {product}",
    "hello im ringing about {info_target}",
    "im calling to {action}",
    "i would like to {action}",
    "id like to {action} please",
    "i want to {action}",
    "i need to {action}",
    "i need to {action} {time}",
    "i just want to {action}",
    "i was hoping to {action}",
    "please {action}",
    "hold on a second",
    "one moment please",
    "just a minute",
    "bear with me",
    "let me just find it",
    "let me have a look",
    "hang on let me get my card",
    "i see",
    "i understand",
    "mhm",
    "uh huh",
    "yeah yeah",
    "oh right",
    "oh i see",
    "got it",
    "makes sense",
    "i think so",
    "i dont think so",
    "i dont know",
    "not sure",
    "maybe",
    "probably",
    "never mind",
    "no worries",
    "that would be great",
    "that would be lovely",
    "that will do",
    "it is the second one",
    "the black one",
    "about three weeks ago",
    "last tuesday",
    "in the morning",
    "about fifty pounds",
    "by card",
    "online",
    "{detail} is on the letter",
    # agent statements
    "let me check that for you",
    "ill just pull up your account",
    "i can see the {product} here",
    "i can see that on the system",
    "im sorry to hear that",
    "im so sorry about that",
    "i do apologise for the inconvenience",
    "i understand how frustrating that must be",
    "i completely understand",
    "ill get that sorted for you",
    "i have booked the engineer for {time}",
    "your {product} was sent {time}",
    "the refund will take three to five working days",
    "i have added a credit to your account",
    "i have changed that for you",
    "thats all updated now",
    "you should receive a text shortly",
    "the engineer will call before he arrives",
    "our policy is that returns must be within thirty days",
    "unfortunately we cant do that",
    "the system is a bit slow today",
    "i will transfer you now",
    "please hold the line",
    "thank you for calling {brand}",
    "thank you for holding",
    "you are through to customer services",
    "my name is sarah how can i",
    "the {detail} is on the top of your bill",
    "you need to press the reset button for ten seconds",
    "turn the router off at the wall and wait a minute",
    "if that doesnt work give us a call back",
    "there was a fault on the line but its fixed now",
    "the outage in your area has been resolved",
    "we had some delays earlier but everything is back to normal",
    # everyday chat statements
    "i went to {thing} with my brother",
    "{thing} was {good_adj}",
    "i really enjoyed {thing}",
    "we are going to {activity} {time}",
    "lets {activity} {time}",
    "i would love to {activity}",
    "i think ill {activity} {time}",
    "i have to work {time}",
    "im going to visit my parents {time}",
    "my sister is getting married next month",
    "i just started a new job",
    "we moved into a new flat",
    "i bought a new {product} {time}",
    "i have a {product} at home",
    "the {product} is in the kitchen",
    "i usually take the bus to work",
    "it is about ten minutes from here",
    "it costs about twenty dollars",
    "the meeting starts at nine",
    "i will call you later",
    "dont forget to bring your passport",
    "please sit down",
    "pass me the salt please",
    "could you pass me the pen",
    "would you close the window please",
    "try the chicken its really good",
    "take the second left",
    "you should see a doctor",
    "you had better hurry",
    "lets meet at the station",
    "{misfortune}",
    "{misfortune} but its fine",
    "{misfortune} so i was a bit late",
    "oh no {misfortune}",
    "i had a problem with my homework but my teacher helped",
    "there was a delay on the line this morning but i made it",
    "the flight was a bit late but we had a great time",
    "the old {product} broke so i bought a new one",
    "my {product} is a bit slow but it does the job",
    "no problem at all",
    "it doesnt matter",
    "i hate to bother you but could i {action}",
    "im sorry to hear about your grandmother",
    "that is too bad",
    "what a pity",
    "what a lovely day",
    "what a great idea",
    "how lovely",
    "how nice of you",
    "congratulations",
    "happy birthday",
    "good luck with {thing}",
    "i agree with you",
    "you are right",
    "i couldnt agree more",
    "im really looking forward to {thing}",
    "i love this song",
    "i love my new {product}",
    "i feel much better today",
    "it was a long day but a good one",
    "the price has gone up a bit",
    "he is a doctor",
    "she works at the bank",
    "it was built in the eighteenth century",
    "my favourite colour is blue",
    "i prefer tea to coffee",
    # negative feelings or opinions that are no grievance with anyone
    "{negative_life}",
    "{negative_life} but im okay",
    "oh {negative_life}",
    "{opinion}",
    "{opinion} haha",
    "i think {opinion}",
    "my {product} broke so i had to buy a new one",
    "it was my fault i dropped the {product}",
    "the doctor said it is nothing serious",
    "i had some trouble finding the place but we got there",
    "im sorry i was late the bus broke down",
    "there was a problem with the printer but i fixed it",
    "dont worry its not a problem",
    "no problem i can wait",
    "the delay was only ten minutes",
    "i had a bad cold last week",
    "it was a terrible storm last night",
    # positive / neutral social posts
    "just got my new {product} from {brand} love it",
    "thanks {brand} for the quick delivery",
    "shout out to {brand} for {good_adj} service",
    "{brand} customer service was {good_adj} today",
    "the {staff} was {good_adj}",
    "big thanks to {staff} for sorting my {product}",
    "{brand} has a sale on this weekend",
    "{brand} announced a new {product} today",
    "watching the match with friends",
    "off to {activity} {time}",
    "cant wait for {thing}",
    "my team played terribly but we still won",
    "that film was scary as hell but i loved it",
    "this heat is killing me haha",
    "monday again time for coffee",
    "new blog post about {thing} is up",
    "reading a great book about the history of {thing}",
    "just booked {thing} so excited",
    "finally finished my exams",
    "{brand} stock is up today",
    "{tweet_neutral}",
    "{tweet_neutral} haha",
    "{tweet_neutral} so happy",
    "{tweet_neutral} love it",
]

FILLERS = ["", "", "", "", "um ", "uh ", "well ", "so ", "oh ", "yeah ", "okay ", "and ", "but ", "look "]
TAILS = ["", "", "", "", "", " please", " thanks", " mate", " though", " honestly", " you know",
         " to be honest", " right now", " at all"]


def _fill(template: str, rng: random.Random) -> str:
    for _ in range(3):  # fillers may hold slots of their own
        template = _SLOT.sub(lambda m: " ".join(rng.choice(SLOTS[m.group(1)]).split()), template)
    return template


def _expand(template: str, rng: random.Random, n: int) -> Iterator[str]:
    if not _SLOT.search(template):
        yield template
        yield rng.choice(FILLERS) + template
        return
    for _ in range(n):
        text = rng.choice(FILLERS) + _fill(template, rng)
        if rng.random() < 0.25:
            text += rng.choice(TAILS)
        yield text


def generate(seed: int = 13, per_template: int = 12) -> list[tuple[str, str]]:
    """Expand every template into (text, label) pairs; normalised, deduplicated, in stable order."""
    rng = random.Random(seed)
    out: list[tuple[str, str]] = []
    seen: set[str] = set()
    for label, templates in (("venting", VENTING), ("question", QUESTION), ("other", OTHER)):
        for template in templates:
            for text in _expand(template, rng, per_template):
                norm = " ".join(re.sub(r"[^a-z0-9 ]+", " ", text.lower()).split())
                if norm and norm not in seen:
                    seen.add(norm)
                    out.append((norm, label))
    return out
