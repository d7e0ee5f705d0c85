"""EXPERIMENT: extra self-written training sentences for the embedding head (:mod:`dialog.train_embed`).

Written from scratch by the carecoach authors for this experiment (Apache-2.0, also CC0-1.0), in the
judge's ASR form. Its aim is variety the templated corpus lacks: ordinary everyday statements,
plans, descriptions and small talk (``other``), plain information questions on many topics
(``question``), and everyday annoyance that is clearly aimed at someone or something (``venting``).
Nothing was taken or paraphrased from any evaluation corpus.
"""

from __future__ import annotations

import random
import re

PEOPLE = ("my brother|my sister|my mum|my dad|my friend|our neighbour|my boss|my teacher|my flatmate|"
          "my cousin").split("|")
PLACES = ("the library|the station|the park|the supermarket|the office|the museum|the gym|the post office|"
          "the hospital|the airport|the bank|the market|the hotel|the beach|the city centre").split("|")
TIMES = "yesterday|last night|this morning|on saturday|last week|two days ago|at lunch|after work".split("|")
FUTURE = "tomorrow|tonight|next week|on sunday|this weekend|after class|in the summer|later today".split("|")
THINGS = ("a new coat|some bread|a present for my mother|two tickets|a used car|a pair of boots|fresh vegetables|"
          "a map of the city|a birthday cake|some flowers|a second hand bike|a winter jacket").split("|")
TOPICS = ("the history of the town|cooking|gardening|football|modern art|the stock market|jazz|old films|"
          "learning languages|photography|chess|travel in asia").split("|")

OTHER = [
    "i went to {place} {time}", "{person} is coming to visit {future}", "we stayed at home and watched television",
    "i bought {thing} {time}", "{person} gave me {thing} for my birthday", "i am interested in {topic}",
    "{person} works at {place}", "the bus stop is just across the road", "i usually get up at seven",
    "it takes about twenty minutes on foot", "we should leave early to avoid the traffic",
    "i think it will be sunny {future}", "the shop on the corner sells {thing}",
    "i have been learning french for a year",
    "she has two children and a dog", "my room is on the third floor", "the concert starts at eight",
    "i would like a cup of tea please", "i will have the fish and a salad", "here is your change",
    "the total comes to fifteen pounds", "you can pay at the counter", "turn left at the lights",
    "the lift is at the end of the corridor", "sign here please", "fill in this form and bring it back",
    "here is my passport", "this is my friend tom", "nice to meet you", "it was nice talking to you",
    "i am afraid i cant come {future}", "i will think about it", "let me know when you are ready",
    "i will pick you up at six", "see you at the station", "call me when you get home",
    "that sounds like a good plan", "i am not sure yet", "it depends on the weather",
    "i used to live near {place}", "we met at university", "i grew up in a small village",
    "my favourite subject was history", "i play football every saturday", "i prefer the blue one",
    "the red one is a bit more expensive", "it fits perfectly", "they are having a sale this week",
    "i read an article about {topic}", "there is a good programme on {topic} tonight",
    "the train leaves from platform four", "my flight lands at noon", "the room has a view of the sea",
    "breakfast is served from seven to ten", "check out is at eleven", "we have a table for two at eight",
    "i need to get my hair cut", "i have an appointment with the dentist {future}",
    "the doctor told me to rest for a few days", "i am feeling a bit better now",
    "i have a slight cold", "i was really tired after the trip", "the exam is next monday",
    "i passed my driving test", "i got the job", "we are getting married in june",
    "he is very good at maths", "she speaks three languages", "it is my turn to cook tonight",
    "dinner is ready", "the soup is a bit too salty for me", "i will just have water thanks",
    "i think you are right about that", "that is a good point", "i see what you mean",
    "well it is not that simple", "to be honest i have no idea", "i suppose so",
    "i was only joking", "never mind it is not important", "that is very kind of you",
    "thank you for the lovely evening", "i really appreciate your help", "sorry i am a bit late",
    "excuse me", "after you", "help yourself", "make yourself at home", "enjoy your meal",
    "what a beautiful garden", "what a nice surprise", "how wonderful", "that is amazing news",
    "i am so happy for you", "good for you", "well done", "it was a close game",
    "the weather is lovely today", "it might rain later", "it is getting colder",
    "the traffic was heavy this morning", "the meeting was moved to thursday",
    "i have to finish this report by friday", "my computer is a bit old but it works",
    "we ran out of milk", "i forgot to buy eggs", "i left my umbrella at {place}",
    "the museum is closed on mondays", "the price includes breakfast", "the parcel arrived this morning",
    "my order came yesterday and it is great", "the engineer fixed it in ten minutes",
    "the new phone has a really good camera", "i switched to a cheaper plan last year",
    "the app has a new update", "i paid the bill online", "my contract ends in march",
    "i am calling on behalf of my mother", "the account is in my husbands name",
    "i have the letter in front of me", "the number on the back of the card is", "it starts with four",
    "i moved here about five years ago", "i will send you the details by email",
    "the problem started on tuesday", "it happens mostly in the evening", "the light is flashing orange",
    "i already tried turning it off and on", "i have the receipt somewhere", "i think it was the twelfth",
    "yes that is the address", "no it is the other account", "just the one", "both of them",
    "i am not in a hurry", "whenever suits you", "any time after two", "the morning is better for me",
    "i did not know that", "oh that explains it", "ah okay that makes sense", "fair enough",
]

QUESTION = [
    "where did you go {time}", "what did you buy {time}", "when is {person} coming", "how was your trip to {place}",
    "is {place} far from here", "how do i get to {place}", "which bus goes to {place}",
    "what time does {place} open", "is there a cash machine near here", "can you recommend a good restaurant",
    "what would you like to drink", "are you ready to order", "how would you like to pay",
    "do you take credit cards", "how much are the tickets", "is breakfast included",
    "what is the wifi password", "could you tell me where the toilets are", "does this train stop at the airport",
    "how long is the flight", "which platform is it", "what size do you wear", "can i try it on",
    "do you have it in another colour", "how much is that one", "is it on sale",
    "what are you reading", "what do you think about {topic}", "have you ever tried {topic}",
    "are you interested in {topic}", "what kind of films do you like", "do you play any sports",
    "where are you from", "what do you do at the weekend", "how long have you been learning english",
    "how many brothers and sisters do you have", "when is your birthday", "what are your plans for the summer",
    "did you sleep well", "are you feeling better", "what did the doctor say", "do you need anything",
    "would you like some more", "shall i open the window", "can i borrow your pen",
    "could you help me carry this", "do you know where my keys are", "who was that on the phone",
    "why are you so quiet today", "what happened to your arm", "is everything okay",
    "what should we have for dinner", "where shall we meet", "what time should i come",
    "how much do i owe you", "can you lend me some money until friday", "when do you finish work",
    "is it going to be cold {future}", "have you finished your homework", "did you pass the exam",
    "what is the difference between these two", "how does this work", "what does this button do",
    "how do i change the settings", "can i still use my old card", "when will the new one arrive",
    "how long will it take to fix", "is there anything i need to do", "do i need to be at home",
    "what is the earliest appointment", "can i pay in instalments", "is there a cheaper option",
    "what happens after the contract ends", "can i add my wife to the account",
    "how do i check my balance", "where can i see my bills", "does it include calls abroad",
    "who should i speak to about that", "could you put me through to billing",
    "would it be possible to change the date", "is the offer still available",
    "are there any charges for that", "what do i do with the old one", "how do i send it back",
    "you said thursday didnt you", "so that is all sorted then", "so i just wait for the email",
    "and how long does that usually take", "and what if it happens again", "sorry which number was that",
    "did you say fifteen or fifty", "could you say that a bit slower", "are you still there",
    "can you hear me", "hello is anyone there",
]

VENTING = [
    "i cant believe {person} did that to me again", "{person} never listens to a word i say",
    "{person} borrowed my car and brought it back scratched", "{person} keeps taking my things without asking",
    "i am so angry i could scream", "that makes me so mad", "this is absolutely unacceptable",
    "you have ruined the whole evening", "you always blame me for everything", "you never help around the house",
    "how many times have i told you not to do that", "why do you never listen to me",
    "why cant you ever be on time", "why on earth would you say that", "who do you think you are",
    "dont talk to me like that", "dont you ever do that again", "stop shouting at me",
    "get your hands off my bag", "that is the rudest thing i have ever heard",
    "the service in this place is a disgrace", "we have been waiting forty minutes and nobody has come",
    "this steak is burnt and cold", "the room stinks of smoke", "there is mould all over the bathroom",
    "the food was disgusting and they still charged us", "ugh this coffee tastes awful",
    "gross someone left their rubbish on my seat", "that is revolting i am not eating that",
    "the bus drove right past me again", "the train is cancelled again for the third time this week",
    "they lost my luggage and nobody will tell me anything", "i have been overcharged and nobody cares",
    "i want to make a formal complaint", "i am fed up with being ignored", "this is a complete disgrace",
    "i pay good money for this and it never works", "absolutely useless service as usual",
    "why does nothing ever work with you people", "are you even listening to me",
    "i have explained this five times already", "do you have any idea how much time i have wasted",
    "you people are unbelievable", "this company is a total joke", "i am never shopping here again",
    "my new phone broke after two days and they refuse to replace it",
    "they cut off my internet even though i paid", "the engineer never showed up and i took the day off",
    "three weeks and still no refund", "still no response to my email from last month",
    "i am sick to death of these delays", "it is infuriating", "how is this even legal",
    "what a terrible way to treat customers", "the manager was rude and did nothing",
    "i have had it up to here with your excuses", "this is the last time i use your service",
    "you have got to be joking", "not again this is ridiculous", "oh for heavens sake",
    "that idiot nearly crashed into me", "the neighbours dog barks all night and they dont care",
    "my landlord still hasnt fixed the heating after a month", "the council ignored all our complaints",
    "they charged me a late fee when it was their mistake", "your website took my money and crashed",
]

SLOTS = {"person": PEOPLE, "place": PLACES, "time": TIMES, "future": FUTURE, "thing": THINGS, "topic": TOPICS}
_SLOT = re.compile(r"\{(\w+)\}")


def generate_extra(seed: int = 29, per_template: int = 4) -> list[tuple[str, str]]:
    """Expand the extra sentences (slots filled at random, fixed seed); normalised and deduplicated."""
    rng = random.Random(seed)
    out: list[tuple[str, str]] = []
    seen: set[str] = set()
    for label, items in (("venting", VENTING), ("question", QUESTION), ("other", OTHER)):
        for item in items:
            n = per_template if _SLOT.search(item) else 1
            for _ in range(n):
                text = _SLOT.sub(lambda m: rng.choice(SLOTS[m.group(1)]), item)
                norm = " ".join(re.sub(r"[^a-z0-9 ]+", " ", text.lower()).split())
                if norm not in seen:
                    seen.add(norm)
                    out.append((norm, label))
    return out
