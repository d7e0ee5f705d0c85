"""Hand-written word lists and phrase patterns used by :mod:`dialog.classify`.

This module owns the *data* of the utterance classifier: question structure words and
the venting lexicons (anger, blame, grievance history, threats, problem reports). Every
entry was written by the carecoach authors from general knowledge of English and of
contact-centre speech; nothing here is copied from any evaluation corpus.

All patterns are written for normalised ASR text: lowercase, no punctuation and no
apostrophes ("don't" arrives as "dont", "I'm" as "im").
"""

from __future__ import annotations

# --- question structure -------------------------------------------------------------

WH_WORDS = frozenset(
    """what whats when whens where wheres which who whos whose whom why whys how hows
    whove whod wholl whatve whatd whatll whatre whered wherere howd howre""".split()
)

# Auxiliaries/modals that start a yes/no question when followed by a subject.
AUX = frozenset(
    """do does did is are was were am can could will would shall should may might must have has had
    dont doesnt didnt isnt arent wasnt werent cant couldnt wont wouldnt shouldnt havent hasnt hadnt
    aint mustnt""".split()
)

# Words that can be the subject right after an inverted auxiliary.
SUBJECTS = frozenset(
    """i you we they he she it there that this these those u ya yall ye
    my your our their his her its the a an any anyone anybody anything someone somebody something
    everyone everybody everything all one both either none nobody""".split()
)

PRONOUN_SUBJECTS = frozenset("i you we they he she u".split())

# Auxiliaries that, opening a turn, are inverted before any subject, a name or noun included ("is sarah
# around"). Not "were"/"well" (ASR's "we're"/"we'll"), "do"/"have" (imperatives: "do try the soup"), "was"/"has"
# ("was lovely thanks", "has been a long day") nor negatives ("didnt see it", "doesnt matter"),
# which drop their subject in statements.
NP_INVERSION_AUX = frozenset("is does did".split())

# Auxiliaries strong enough to mark a question in the *middle* of an utterance (several
# sentences run together once punctuation is gone): "that sounds fine do you take cards".
MID_AUX = frozenset(
    "do does did can could would will have has shall should may dont doesnt didnt cant wont".split()
)

# Tokens after which "do you"/"can i" is part of a statement or a clause, not a new question.
MID_BLOCK_PREV = frozenset(
    """i you we they he she it u that what who which where when how why if whether than as so nor
    neither because cause cos coz though although unless until till know mean say think see guess
    wonder not also just only too the a an this these those to and""".split()
)

# Mid-utterance "does/did" before a possessive or article opens a question: "lovely does your shop deliver"
# ("do" is left out: "i always do my homework").
MID_DO = frozenset("does did doesnt didnt".split())
MID_DO_SUBJ = frozenset("my your his her their our the this that".split())
# A determiner two words before a mid-turn auxiliary makes the word between a noun subject, so the
# auxiliary is the main verb of a statement: "my brother did the forms", "the plumber did it".
DETERMINERS = frozenset("my your his her their our the a an this these those".split())

# Words that end a sentence before a mid-turn "is it ...": a predicate adjective, or "one last thing"
# ("the problem is it leaks" keeps "is" as the main verb, so nouns in general are not listed; after
# "ok"/"yes" a bare "is it" is a backchannel).
MID_IS_IT_PREV = frozenset("good great fine nice lovely terrible awful dreadful thing".split())

# Before a mid-turn "what is your ...", a pronoun (a previous clause's object, or its subject when ASR cut
# it short: "fine by me what is your budget", "ill do that what time suits you"), "that", "so", "also",
# "just" or "too" ends the previous sentence; verbs of knowing and saying, a copula or a preposition
# make the wh-clause embedded ("i know what is ...").
MID_WH_BLOCK_PREV = MID_BLOCK_PREV - frozenset("i you we they he she it u that so also just too".split())

# Mid-utterance inversions that open a new yes/no question: "thats ok is there a fee".
MID_COPULA = frozenset("is are has have was were".split())
MID_COPULA_SUBJ = frozenset("there you anyone anybody anything she he".split())
WH_CONTRACTED = frozenset("whats wheres hows whos".split())

# Words before a final "what" that make it an answer or a prompt, not an echo question ("yes what").
ECHO_WHAT_BLOCK_PREV = frozenset(
    """no yes yeah yep yup so or and know guess thats exactly just is what oh okay ok right hello matter""".split()
)

# Wh-words found glued to the previous word once punctuation is stripped ("fine.How" -> "finehow"),
# longest first, and real words that end in one.
GLUED_WH = ("whats", "where", "which", "what", "when", "how", "who", "why")
WH_COMPOUNDS = frozenset(
    """somewhere anywhere everywhere nowhere elsewhere somehow anyhow nohow somewhat""".split()
)

# Words before a final "anything else" that make it an object, not an elliptical question.
ANYTHING_ELSE_BLOCK_PREV = frozenset(
    """do does did need needing want wanted have has had buy get got see know than about for of with like
    try eat say before in on interest without theres there is was thats""".split()
)
# A negation or "think" before a final "anything else" makes it the caller's closing answer: "no i dont
# think theres anything else".
ANYTHING_ELSE_BLOCK_ANY = frozenset("dont didnt doesnt think".split())

# A bare "X or Y" is a choice offered, but not between two numbers (an estimate: "nine or ten") nor in a
# fixed phrase.
NUMBER_WORDS = frozenset(
    """one two three four five six seven eight nine ten eleven twelve fifteen twenty thirty forty fifty
    hundred first second third""".split()
) | frozenset(str(i) for i in range(100))
FIXED_OR_PAIRS = frozenset({("sooner", "later"), ("more", "less"), ("give", "take"), ("now", "never"),
                            ("whether", "not"), ("either", "way"), ("rain", "shine"), ("sink", "swim")})

# Exclamatives that look like wh-questions: "what a mess", "how lovely".
EXCLAMATIVE_AFTER_WH = frozenset(
    """a an lovely nice kind sweet wonderful great awful terrible strange funny interesting
    beautiful good bad sad rude stupid silly dare lucky cool exciting horrible annoying odd""".split()
)

# Leading discourse markers and fillers skipped before looking at clause structure.
LEADING_FILLERS = frozenset(
    """um uh er erm ah oh eh hmm mm mhm ahh uhm well so and but or okay ok alright right yes yeah yep
    yup no nope hi hello hey now then also just actually sorry excuse me please sir madam
    maam look listen anyway anyways fine great good sure oops wow gosh hm em emm umm uhh ahm ahem""".split()
)

# Greetings and thanks that open a turn ahead of its first clause, skipped (with the fillers above) before
# looking for the turn's question: "yeah hi can you ...", "thanks for that so whats ...". Longest first.
TURN_OPENERS: tuple[tuple[str, ...], ...] = tuple(tuple(o.split()) for o in (
    "good morning", "good afternoon", "good evening", "hi there", "hello there", "hey there",
    "thanks very much", "thanks for that", "thanks for holding", "thanks for waiting", "thank you very much",
    "thank you for that", "thank you for holding", "thank you for waiting", "thanks a lot",
    "thank you", "thanks", "cheers", "hi", "hello", "hey", "hiya", "morning", "afternoon", "evening",
    "by the way",
))
# After "how do you do", words that make it a question about doing something ("how do you do that", "how
# do you do the transfer online"); anything else is the greeting ("how do you do mrs patel").
HOW_DO_YOU_DO_OBJECTS = frozenset(
    "it that this these those the a an your my his her their our them with for without so on in when if".split()
)

# Two-word openers skipped like fillers: "i mean have you checked the settings", "you know is it".
LEADING_FILLER_PAIRS = frozenset({("i", "mean"), ("you", "know"), ("excuse", "me"), ("thank", "you"),
                                  ("hang", "on"), ("hold", "on")})

# An agent asking the caller for an identifying detail is asking a question even in imperative form.
AGENT_DETAIL_REQUEST = [
    r"(?:confirm|take|have|give me|tell me|spell|read out|grab|get|need) (?:me )?(?:your|the) (?:\w+ )?(?:\w+ )?"
    r"(?:name|names|address|postcode|post code|number|details|date of birth|reference|surname|code)",
]

# Phrases that make the utterance a request for information wherever they occur.
EMBEDDED_QUESTION = [
    # CONTRACT §4: asking for help is a question, even without question syntax ("i need some help with my
    # bill", "please help me with the online form", a bare "help")
    r"\b(?:i|we) (?:really |just |will |would )?(?:need|want|could do with|would like) "
    r"(?:some |your |a bit of |a little )?(?:technical |tech )?(?:help|assistance|support)\b",
    r"^(?:please )?help me\b",
    r"^(?:(?:um|uh|er|erm|oh|so|please) )*help(?: please)?$",
    r"\bplease help\b(?! yourself| yourselves)",
    r"i (?:was|am|m|were) (?:just )?wondering",
    r"(?:im|i am) (?:just )?wondering",
    r"\bi wonder (?:if|whether|what|when|where|how|why|who)",
    r"wonder(?:ing|ed)? (?:if|whether)",
    r"\bwondering (?:what|when|where|how|why|who|which)\b",
    # a guarded ask: "you wouldnt happen to know the opening hours", "i dont suppose you could check", "i
    # dont know if youre the right team for this", "you dont know if the engineer is booked": not knowing,
    # now, something about the listener, or whether a way exists, asks them to say ("i dont know if its too
    # late", "i didnt know if the shop was open" are the speaker's own doubts, not asks)
    r"\byou (?:dont|wouldnt|do not|would not) happen to (?:know|have)\b",
    r"\bi dont suppose (?:you|anyone|theres)\b",
    r"\b(?:i (?:dont|do not) know|dunno) (?:if|whether) "
    r"(?:you|youve|youd|youre|anyone|someone|theres any|there is any)\b",
    r"\byou (?:dont|do not) know (?:if|whether)\b",
    r"\b(?:just (?:like to|want to|wanna|wanted to)|wanna) (?:know|ask|find out) "
    r"(?:if|whether|what|when|where|how|why|who|which)\b",
    r"\bi (?:just )?wondered (?:when|what|where|how|why|who|which)",
    r"(?:can|could|would|will) (?:you|u) (?:please |just |possibly |kindly )?(?:tell|let) me",
    r"(?:can|could|would|will) (?:you|u) (?:please |just )?(?:explain|confirm|check|advise|clarify)",
    r"(?:do|did|would) (?:you|u) (?:happen to )?know (?:if|whether|what|when|where|how|why|who|which)",
    r"(?:can|could|may|might) i (?:please |just )?(?:ask|know|find out|check)",
    r"is (?:it|there) (?:any way|anyway|possible|a way|a chance)",
    r"(?:id|i would|i d|i want to|i wanna|i need to|i just want to) (?:like to )?(?:know|ask|find out)"
    r" (?:if|whether|what|when|where|how|why|who|which|about|my|the|our)\b",
    r"\bany (?:idea|ideas|news|update|updates)\b",
    r"\bplease (?:tell|advise|let me know|explain)\b",
    r"\b(?:tell|show) me (?:how|what|when|where|why|which|if|whether)\b",
    r"\bwhat about (?:you|it|him|her|them|that|this)$",
    r"\bhow about (?:you|yourself|yours)$",
    r"\b(?:is|was) (?:that|this|it) "
    r"(?:correct|right|all right|alright|okay|ok|true|so|possible|included|fine)$",
    r"\bhow come\b",
    # (not a quantity something turns on or the speaker cannot give: "it all depends on how many lines you
    # need", "no matter how often i ring", "i couldnt tell you how long", "no idea how much it was")
    r"(?<!depends )(?<!depends on )(?<!matter )(?<!cant say )(?<!no idea )(?<!regardless of )"
    r"(?<!couldnt tell you )\bhow (?:much|many|long|often|far|old|soon|late|early)\b",
    r"\bi (?:just )?(?:wanted|want|need|needed|wish|wished) to "
    r"(?:check|ask|enquire|inquire|know|find out|query)",
    r"\b(?:enquir|inquir)(?:e|ing|y)\b",
    # a caller stating what they are after asks for it: "were trying to find the postcode for your head office"
    r"\b(?:im|i am|were|we are) (?:just |actually )?(?:after|looking for|trying to (?:find|get)) "
    r"(?:the|a|an) (?:\w+ )?(?:\w+ )?(?:number|address|postcode|code)\b",
    r"\bi (?:just |actually )?(?:want|wanted|need|needed) (?:just |actually )?to (?:find|get) "
    r"(?:the|a|an) (?:\w+ )?(?:\w+ )?(?:number|address|postcode|code)\b",
    r"^(?:and |or |so )?(?:for|at|from|to|by|in|on|of|with|since|until) "
    r"(?:what|which|when|where|whom|how)\b",
]

# The speaker naming what they want to find out is the turn's act wherever it sits in a long turn (unlike
# the phrases above, rarely reported speech): "... and what i need to find out is when it gets fixed".
STATED_ASK = [
    r"what (?:i|we) (?:want|need|wanted|needed|would like|d like) to (?:know|ask|find out|check) is",
]

# After "can you": skills and capacities, asked about rather than asked for ("can you swim").
ABILITY_VERBS = frozenset("speak read write manage afford swim cook type sing understand work eat".split())

# After "would you like to": verbs that invite the listener along rather than ask what they want.
INVITATION_VERBS = frozenset("go come join dance hang meet grab catch".split())

# "i was wondering if you could ...": the modal clause is scored like a direct "could you ..." question.
WONDER_IF_MODAL = (r"\bwonder(?:ing|ed)? (?:if|whether) (you|u|i|we|the \w+) (could|can|would|might) "
                   r"((?:\w+ ?){1,6})")

# After "can/could/would/will you" or "can/could/may i": verbs that ask for information or help.
# Any other verb makes the utterance a request for an action or for permission ("could you hold the
# line", "may i put you on hold"), which dialogue-act schemes count as a directive, not a question,
# unless a caller asks for a service (SERVICE_ACTION_VERBS below).
INFO_REQUEST_VERBS = frozenset(
    """tell confirm check explain clarify advise spell repeat let help ask know find hear recommend
    suggest say describe remind verify look see""".split()
)
# After "can/may i" or "can we" these ask leave to do something or offer something ("may i see your
# ticket", "may i suggest the fish"), not for information: a directive or an offer.
OFFER_OR_PERMISSION_VERBS = frozenset("see look suggest recommend".split())
# These ask for information only when they ask for *your/the* details: "can i have your surname".
DETAIL_REQUEST_VERBS = frozenset("have take get give send quote book".split())
MODALS = frozenset("can could would will may might shall".split())
# A modal that, before one of these subjects, asks a yes/no question ("will it cost more", "should i
# wait"), unlike "can you"/"will you" which may request an action.
YES_NO_MODALS = frozenset("will should might must".split())
YES_NO_MODAL_SUBJECTS = frozenset("i we it they he she".split())
# A caller asking the agent to act on the account asks for help (CONTRACT §4): "can you cancel the order",
# "could you put me through to sales".
SERVICE_ACTION_VERBS = frozenset(
    """fix repair sort transfer connect reset unlock cancel change update send post email text refund
    credit waive reduce lower replace swap book arrange reschedule move process activate reactivate
    reconnect restore escalate remove add upgrade downgrade switch renew extend pause stop block order
    deliver call ring give get take quote issue raise log report investigate chase""".split()
)
# The details an agent asks a caller for, listed without a verb: "and the name and address please".
DETAIL_NOUNS = frozenset(
    """name names address postcode code number surname initial initials reference email birth""".split()
)
# Details an agent hands out rather than asks for: "your reference number is" (the digits cut off by ASR)
# tells, "and your postcode is" asks.
ISSUED_DETAIL_NOUNS = frozenset("reference ref ticket case confirmation tracking booking order balance".split())

# Things a caller asks to be given or told, not handed over: "could i get a contact number for the repairs team".
INFO_NOUNS = frozenset(
    """number numbers address addresses postcode code codes details information info price prices
    breakdown quote estimate idea timetable location directions""".split()
)

# Determiners/possessives that start an elliptical request for a detail: "and your postcode please".
ELLIPTICAL_DETAIL_START = frozenset("your the its whats".split())

# Tag questions at the very end: "you closed my account didnt you", "its free isnt it".
TAG_AUX = frozenset(
    """isnt arent wasnt werent dont doesnt didnt cant couldnt wont wouldnt havent hasnt shouldnt
    is are was were do does did can will have has could would aint mustnt mightnt neednt""".split()
)
TAG_SUBJ = frozenset("it you i we they he she there that".split())
# These make a tag only after a negative auxiliary ("theres a fee isnt there"); after a positive one they
# are the end of a statement cut short ("the trouble is that").
TAG_NEGATIVE_ONLY_SUBJ = frozenset("there that".split())
# A tag's auxiliary agrees with its pronoun ("does it", "do you"); one that doesn't is a main verb and
# its object: "ill do it", "when i do that", "you dont have it".
TAG_PLURAL_AUX = frozenset("do dont have havent are arent were werent".split())
TAG_SINGULAR_AUX = frozenset("does doesnt has hasnt is isnt".split())
TAG_PLURAL_SUBJ = frozenset("you i we they".split())
TAG_END = frozenset("eh huh innit or".split())
# Words before a final "right" that make it an adjective or a direction, not a tag.
RIGHT_TAG_BLOCK_PREV = frozenset(
    """thats that its is all alright yeah yes oh okay ok turn the on to your my his her their our
    youre exactly quite absolutely just dead not be are was were am im were right left far
    sounds sound seems seem looks look feels feel""".split()
)

# --- venting ------------------------------------------------------------------------
# Each tier is a list of regex fragments matched on word boundaries; tiers carry weights
# in classify.py. The venting threshold is 1.0: one ANGER hit decides on its own, the
# other tiers need company (another hit or clearly negative sentiment).

VENT_ANGER = [
    # anger, contempt and insults
    r"ridiculous|unacceptable|outrageous|disgraceful|disgrace|disgusting|disgusted|pathetic|appalling|"
    r"shocking|scandalous|incompetent|incompetence|useless|clueless|shambles|joke of a",
    r"furious|livid|fuming|infuriating|infuriated|outraged|enraged|pissed|pissed off|so angry|really angry",
    r"fed up|sick of|sick and tired|had enough|cant stand(?! up)|cannot stand(?! up)|cant bear|drive me crazy|"
    r"driving me crazy|driving me mad|drive me mad",
    r"fuck\w*|shit\w*|bullshit|crap|crappy|damn|dammit|goddamn|bloody hell|wtf|ffs|screw you|bastard\w*",
    r"shut up|how dare|(?<!you )(?<!to )get lost|go to hell|"
    r"nonsense|rubbish|garbage|"
    r"idiot\w*|stupid|moron\w*|liar|liars|lying to me|lied to me|shame on you|yuck|gross",
    # "im a sucker for a bargain" is a fondness; "shut your mouth" tells the listener off like "shut up"
    r"suckers?\b(?! (?:pads?|cups?|mounts?|that|on|for (?!\w+ing\b)))|"
    r"shut your (?:trap|mouth|face|gob)(?! cream| wash| mask)",
    r"worst|horrendous|atrocious|abysmal|lousy|poor service|bad service|terrible service|"
    r"awful service|rude|robbery|rip ?off|ripped off|scam\w*|unprofessional|"
    r"cheat(?:ed|ing)? (?:me|us|customers|people)|(?:ive|i have|weve|we have|i was|we were|i got|we got|been|being) "
    r"cheated",
    r"you people|you lot",
    r"what gives you the right|who do you think you are|"
    r"(?:thats|that is|youre|you are) (?:so |really |too )?(?:harsh|mean|selfish|cruel|heartless)",
    # interpersonal anger: telling someone off, dares, threats, "never listens"
    # reproaches aimed at the listener: "i cant believe you didnt tell me", "fine if thats how you feel",
    # "knock it off"
    r"i (?:cant|cannot|can not) believe (?:you|youd|youve|youre|he|she|they)(?: \w+)? "
    r"(?:dont|didnt|wont|wouldnt|never|forgot|lied)|"
    r"if thats (?:the way|how) you (?:feel|want it)|knock it off|cut it out|leave me alone|get off my back|"
    r"give it a rest",
    # telling someone to leave, but not the same words before a piece of news (disbelief)
    r"butt out|mind your own business|get out of (?:my|here(?! (?:i|you|she|he|they|we|no|really|thats|its)\b))|"
    r"(?:you|i) dare|dare you|nuisance|"
    r"(?:you|he|she|they|hes|shes|youve|theyve) never (?:listen|listens|listened)|never listens|got robbed|"
    r"(?:no more|dont give me|spare me (?:the|your)|enough with the) excuses|"
    r"(?:not (?:looking for|interested in)|(?:i|we) dont (?:want|need)) (?:any |any more |your |more )?excuses|"
    # a firm refusal in the speaker's own name ("we wont accept returns" is a shop's policy)
    r"i (?:will not|wont|refuse to) (?:put up with|stand for) (?:this|that|it|being|any more|anymore)|"
    # "you cant do that" alone is as often an agent stating a rule
    r"you (?:cant|cannot) do that to (?:me|us)\b|"
    # reproaches: being rushed or frightened, "the least you could do", name-calling
    # ... and being hurried off a call: "youre trying to rush me", "dont hurry me off the phone"
    r"rushing (?:me|us)|(?:stop|dont|quit) (?:rush|hurry)(?:ing)? (?:me|us)|"
    r"(?:trying|want\w*) to (?:rush|hurry) (?:me|us)|"
    r"(?:rush|hurr)\w* (?:me|us) off the (?:phone|line)|(?:frightened|scared) (?:me|us) (?:half )?to death|"
    r"scared the (?:hell|life|crap) out of (?:me|us)|"
    # "you could at least try restarting it" is advice; a reproach names what was owed to the speaker
    r"(?:you|they) (?:should|could) (?:have )?at least (?:have|tell|told|let|call|called|ring|rang|reply|replied|"
    r"apologi[sz]e|apologi[sz]ed|warn|warned|inform|informed|say|said|"
    r"(?:give|gave|send|sent|offer|offered|refund|refunded) (?:me|us)\b)|the least you (?:could|can)|(?<!knee )jerks?|"
    r"(?:cut|cutting|cuts|jump|jumped|jumping) (?:in|into)? ?(?:the )?(?:line|queue) in front|"
    r"jump(?:ed|ing)? the queue|dont (?:you )?be (?:so )?(?:nosey|nosy|rude|cheeky|stupid|ridiculous)|"
    r"(?:i will|ill|i am going to|im going to|im gonna) (?:throw|smash|break) your|enough of (?:this|your)",
    r"driving me (?:nuts|insane|bananas|up the wall|round the bend|mental)|"
    r"drives me (?:nuts|insane|crazy|mad)|"
    r"(?:let|letting|lets) (?:me|us) down|thanks for nothing|said no one ever|"
    r"(?:hung|hangs|hang|hanging) up on (?:me|us)|(?:gets|getting|got) on my nerves|"
    r"what (?:on earth |the hell |exactly )?(?:are|is) (?:you|they|your \w+) playing at"
    r"(?! (?:the|a|an|this|home|school|work)\b)|"
    # not being listened to, and a long-standing customer's reproach
    r"no ?(?:one|body) (?:\w+ )?(?:listens|listened|is listening)|"
    r"(?:youre|you are|theyre|they are) (?:still )?not (?:even |really )?listening|"
    r"(?:is this|this is|thats|that is) (?:how|the way) you treat",
    # grievance history and broken expectations, strong enough alone
    r"(?:second|third|fourth|fifth|2nd|3rd|4th|5th|umpteenth|hundredth) time (?:i|ive|im|i am|weve|we|were|this|that)",
    # grievance history: the same failure on consecutive occasions ("second week in a row")
    r"(?:\w+ )?(?:time|day|week|month|night|evening|morning|deliverie|delivery|bill)s? in a row|"
    r"(?:second|third|fourth|fifth|2nd|3rd|4th|5th) (?:time|day|week|month|night|evening|morning|bill) "
    r"(?:in a row|running)",
    # "how many times did you ..." asks for a count; exasperation asks how often the speaker must act
    r"how many more times|how many times (?:do|does|must|will|would|am|are|is) (?:i|we) (?:have|need|got) to|"
    r"how many times (?:must|should) (?:i|we)|"
    r"how many times (?:have|has) (?:i|we) (?:\w+ )?(?:called|rung|rang|phoned|asked|told|emailed|explained|"
    r"written|complained|chased)",
    r"still (?:waiting|havent|hasnt|not (?:received|fixed|working|sorted|resolved|heard))",
    r"(?:never|still not|still havent|still hasnt) (?:received|arrived|came|turned up|showed up|"
    r"got back|heard back|responded|replied|called back|rang back|refunded|fixed|sorted)",
    # an adverb may sit between: "nobody even bothered", "no one actually called"
    r"no ?(?:one|body) (?:(?:even|ever|actually|really|once|still|just|apparently|seriously) )?"
    r"(?:has|have|ever|seems|seemed|bothered|called|rang|got back|can help|is helping|cares|cared)",
    r"no (?:response|reply|answer|replies|responses) (?:from|yet|at all)",
    r"not (?:good enough|acceptable|happy|impressed|pleased|satisfied)",
    r"(?:very|really|extremely|so|totally|completely|deeply|beyond) "
    r"(?:disappointed|frustrated|annoyed|upset|unhappy|angry|dissatisfied|mad)",
    r"waste of (?:time|money)|wasted (?:my|an|a|so|hours|days|time)|waste my time",
    # left without a service, money taken, conflicting answers, goods not as ordered
    r"left (?:me|us) (?:without|with no|stranded|in the dark)|(?:took|taken|taking|take) (?:my|our) money|"
    r"(?:told|given) (?:me |us )?(?:\w+ )?different (?:things|answers|stories)|"
    r"not what (?:i|we) (?:ordered|paid for|asked for)|(?:got|been|was|keep getting|kept getting) cut off",
    # a calm "i want to cancel my subscription" is a request (the coach's drifting card still sees it)
    r"want (?:to|a) (?:complain|complaint|refund|speak to (?:a|your) manager)|"
    r"speak to (?:a|your) (?:manager|supervisor)|file a complaint|make a complaint|"
    r"lodge a complaint|report you|take (?:this|it) further|sue you|ombudsman|"
    r"(?:my|our|get a|call a|contact a|see a|involve a|speak to a|talk to a|hire a) (?:lawyer|solicitor)s?|"
    r"trading standards|close my account",
    # threats to leave: cancelling everything, switching to a competitor, taking the business elsewhere
    r"(?:ready|tempted|this close) to (?:cancel|switch|close my)|"
    r"about to (?:cancel|switch) (?:my|the|our|everything|it all)|"
    r"(?:im|i am|were|we are|ill be|i will be) (?:\w+ )?(?:cancell?ing|leaving|switching|quitting) "
    r"(?:everything|it all|the lot|my (?:contract|account|subscription|service|membership|policy))|"
    r"(?:cancel|cancell?ing|close|closing) (?:everything|it all|the lot)|"
    r"(?:switch|switching|move|moving|go|going|leave|leaving) (?:over )?(?:to|for) (?:one of )?(?:your|a|the) "
    r"competitors?|(?:switch|switching|move|moving|go|going) (?:to )?(?:another|a different) "
    r"(?:provider|company|supplier|bank|network|carrier)|"
    r"take my (?:business|money|custom) elsewhere",
    # "unbelievable" said of the situation is exasperation; before a noun it is as often praise
    r"(?:what (?:is|s) wrong with (?:you|your)|are you (?:kidding|joking)|"
    r"(?:this is|thats|that is|its|it is|just|absolutely|simply) unbelievable|^unbelievable)",
    r"why (?:cant|cannot|wont|doesnt|isnt|hasnt|havent|is it so|does it take|do i have to|"
    r"should i have to|on earth|the hell) ",
    # contempt for a service or its staff, and sarcastic thanks for a harm
    r"subpar|sub par|pitiful|waste of space|dumb|get your act together|sort yourselves out|"
    r"(?:thanks|thank you|thx) (?:\w+ )?for (?:ruining|wasting|nothing|making me|cancell?ing|losing|ignoring)|"
    # "the heck"/"the hell" right before the speaker's own decision ("ill", "lets", "why not") gives in
    # cheerfully; elsewhere it is anger at something ("... is this charge on my bill")
    r"(?:(?:what|why|how|where|who) )?the (?:heck|hell)(?! (?:ill|im|id|i will|lets|let us|why not|go on)\b)|"
    r"(?:what|why|how) the fuck|"
    r"(?:ripping|rip|ripped) (?:us|me|people|customers) off|"
    r"(?:last|final) time i (?:ever )?(?:buy|order|use|fly|shop|book|stay|eat|come)",
    # blind round (general knowledge of complaint calls): patience run out, temper words, British
    # exasperation idioms
    r"beyond a joke|(?:at|reached) (?:my|the) wits end|(?:at )?the end of my (?:tether|rope)|enough is enough|"
    r"(?:the )?(?:last|final) straw|(?:losing|lost|lose|running out of|ran out of|run out of) (?:all )?(?:my |of my )?"
    r"patience|(?:my )?patience (?:is |has )?(?:wearing thin|worn thin|running out|run out|run thin)|"
    r"blood boil\w*|irate|seething|incensed|exasperat\w+|aggravating|maddening|"
    r"(?:hacked|cheesed|brassed|ticked|teed) off|hopping mad|up in arms",
    # being fobbed off, strung along or treated with contempt
    r"fob(?:bed|bing)? (?:me|us) off|(?:been|being|was|were|get|got|keep getting) fobbed off|"
    r"(?:messing|mucking|jerking|stringing|pushing) (?:me|us) (?:about|around|along)|"
    r"(?:treat|treated|treating|treats) (?:me|us|your customers|customers) like (?:dirt|rubbish|crap|garbage|an idiot|"
    r"idiots|a fool|fools|a criminal|criminals|a child|children|a number|cattle)|"
    r"taking the (?:mick|mickey|micky|piss)|(?:are you|youre|theyre|you are) having a laugh|"
    r"daylight robbery|extortionate|extortion|conned|fleeced|swindl\w+|"
    # a charge or an act called unlawful or excessive, by a demonstrative or the act itself ("driving without
    # insurance is illegal", "its illegal for us to share your details", "if usage is excessive" state a rule)
    r"(?:thats|that is|that was|this is|this was|its|it is|it was|isnt that|isnt it|seems|sounds|"
    r"(?:doing|did|fees?|charges?|prices?|penalty|penalties|amount) (?:is|are|was|were)) (?:a bit |a little |rather |"
    r"way |very |really |quite |pretty |so |completely |totally |absolutely |clearly |simply |just |plain |downright )?"
    r"(?:(?:illegal|unlawful)\b(?! (?:for (?:\w+ )?)?to\b)|excessive)|"
    r"inexcusable|unforgivable|insulting|(?:its|thats|this is|that is) an insult|"
    r"(?:dont|do not|stop) (?:you )?(?:patroni[sz]e|patroni[sz]ing|talk(?:ing)? down to) (?:me|us)|patroni[sz]ing|"
    r"(?:makes|made|making) me (?:feel )?sick",
    # blind round: insults, contempt and telling someone where to go, as callers say them to agents
    # (words with an everyday sense, "crooks", "clowns", "cowboys", "prick", only said of someone: "police caught
    # the thieves" reports a crime, "do you insure amateurs" asks)
    r"despicable|contemptible|shameful|obnoxious|(?<!sound )(?<!be )(?<!seem )arrogant|appalled|"
    r"assholes?|arseholes?|dickheads?|twats?|wankers?|(?<!dogs )bollocks|dimwit\w*|numpty|numpties|imbeciles?|"
    r"halfwits?|dumbass\w*|cretins?|"
    r"(?:you|youre|you are|theyre|they are|are|bunch of|pack of|nothing but)(?: all| just| a bunch of)? "
    r"(?:crooks|thieves|con artists)|"
    r"(?:bunch of|such(?: an?)?|what an?|load of|pack of|a right) (?:\w+ )?"
    r"(?:clowns?|cowboys?|muppets?|amateurs?|jokers?)|"
    r"(?:you|youre|you are)(?: all| lot| lot are| are all| are just)? (?:clowns?|cowboys?|muppets?|amateurs?|jokers?)|"
    r"(?:you|youre|what a|such a|bunch of) pricks?\b(?! (?:your|the|it|a)\b)|"
    r"(?:piss|bugger|sod) off|get stuffed(?! with)|drop dead(?! gorgeous)|sick to death|a living nightmare|"
    r"(?:im|i am|i was|were|we are|we were|i feel|im getting|getting) (?:very |really |so |a bit |quite |extremely )?"
    r"cross with (?:you|your)\b(?! mouse)",
    # exasperation idioms, and "how could you" as a reproach (it needs the thing done, "this" or "me", after it:
    # "how can you let me know the balance" and "how could you tell it was faulty" ask)
    r"give me a break\b(?! down)|for crying out loud|for (?:gods|goodness|heavens|pitys|christs|petes) sake|"
    r"in your right mind|have you lost your mind|how could you let (?:this|that|it) happen|"
    r"how (?:could|can) you (?:possibly )?(?:do|say|allow|let|justify) (?:this|that|it)\b|"
    r"how (?:could|can) you (?:possibly )?(?:charge|treat|ignore) (?:me|us)\b",
]

# Grievances and problem reports: a fault, a failure, a delay, a broken promise.
VENT_GRIEVANCE = [
    # a turn that opens with "dont open it", "dont use that" gives an order; "they dont accept my card" reports
    # (after a leading "oh", "so", "please" ... too)
    r"(?:doesnt|^(?:(?:oh|so|well|and|but|no|please|just|ok|okay|now) )?dont"
    r"(?! (?:\w+ )?(?:start|use|pay|show|play|open|send|fit|hear|accept|update)\b)|"
    r"(?<!^)(?<!^oh )(?<!^so )(?<!^well )(?<!^and )(?<!^but )(?<!^no )(?<!^please )(?<!^just )(?<!^ok )"
    r"(?<!^okay )(?<!^now )dont|"
    r"didnt|isnt|arent|wasnt|wont|cant|cannot|couldnt|not|stopped|never|no longer|"
    r"not able to|unable to|keeps? not) (?:\w+ )?(?:work|working|works|worked|load|loading|connect|"
    r"connecting|charge|charging|turn on|respond|responding|print|printing|scan|open|opening|sign in|"
    r"log ?in|access|sync|accept|accepting|recogni[sz]\w*(?! (?:you|him|her|them)\b)|play|start|send|sending|receive|"
    r"deliver\w*|"
    r"show|showing|update|updating|download|install|pay(?! attention)|use|get through|hear|let me|letting me|fit|"
    r"sync\w*|listed|appearing|available|accurate|compatible|valid|processed|credited|refunded|covered|"
    r"honou?red|delivered|fixed|resolved|sorted|turn up|show up|call back|ring back)|"
    # "i cant help it" is a habit and "we cant help with that" a remit; not helping the caller is a grievance
    r"(?:doesnt|dont|didnt|wont|wouldnt|never|not|refused to|refuse to) (?:even )?help(?:ing)? (?:me|us)",
    # ... but not the speaker's own unreadiness: "im still not used to the new app", "still not sure which"
    r"still (?:not(?! (?:\w+ )?(?:sure|familiar|used to|ready|decided|finished|dressed|awake)\b)|isnt|doesnt|cant|"
    r"wont|no|nothing|havent|hasnt|broken|down|waiting)|"
    r"(?:havent|have not|hasnt|has not|not|never) (?:\w+ )?(?:heard back|heard anything|heard a (?:word|thing|peep)|"
    r"received|had a reply|had an answer|had a response)|no luck|messed up|screwed up|mess up|screw up|beware",
    r"nasty|inadequate|inaccurate|terribly(?! sorry| ill| sick)|unreliable|unusable|unhelpful|misleading|"
    r"overpriced|lousy|"
    r"poor(?:ly)? (?:service|quality|customer|communication|signal|coverage|connection|performance|"
    r"design|support|experience|value|response)|poorly|not (?:exactly )?thrilled|please fix|"
    r"fix (?:this|your)",
    # "broke" is not a fault in "im broke" (no money) or "broke up"; "lost" needs a lost thing.
    r"broken|(?<!im )(?<!i am )(?<!were )(?<!we are )broke(?! up)|faulty|defective|damaged|cracked|"
    r"ripped|torn|missing(?! (?:something|someone|anything|out|you|him|her|them))|failed|failing|"
    r"(?:you|they|has|have|had|got|get|was|were|been|keep|keeps) lost (?:my|our|the)|(?<!i )(?<!we )(?<!you )got lost|"
    r"lost (?:my|our) (?:\w+ )?(?:order|parcel|package|bag|bags|luggage|suitcase|booking|data|files|"
    r"photos|money|payment|deposit|signal|connection|service|internet)|"
    # other senses: a plane that crashed into something, "freeze" as an order, "not at fault"
    r"(?<!the )crash\w*(?! into)|freez(?:es|ing)|froze|glitch\w*|bug|bugs|buggy|error|errors|outage|outages|"
    r"\w+fail|fail|(?<!at )fault",
    # Lateness is a grievance when something is late, not when the speaker is ("im late for work").
    r"(?:arrived|arrives|arriving|came|comes|delivered|showed up|turned up|running|always|still) late|"
    r"(?<!be )late again|(?:minutes|hours|days|weeks) late|delayed|delay|delays|cancell?ed|"
    r"stuck(?! in (?:a rut|traffic))|stranded|"
    r"overdue|slowest|so slow|too slow|very slow|really slow|painfully slow|slow again",
    r"(?:is|are|been|went|gone|goes|was|still) (?:down|dead)|(?:power|internet|wifi|broadband|service|"
    r"signal|electricity|water|heating|network|phone|line|tv|cable|connection) "
    r"(?:is |was |has |have |had |keeps |kept )?(?:went|been|going|gone|dropped|dropping|drops|cut|"
    r"cutting|cuts) (?:out|off)",
    # something expected that never came, ending the sentence: "and it hasnt come", "it hadnt arrived"
    r"(?:hasnt|hadnt|has not|had not) (?:come|arrived|turned up|shown up|showed up|been delivered)$",
    # a thing (not a person: "he hasnt turned up yet") that has not arrived: "the refund still hasnt arrived"
    r"(?<!\bi )(?<!\bhe )(?<!\bshe )(?<!\bwe )(?<!\bthey )(?<!\byou )(?<!\bwho )"
    r"(?:hasnt|havent|hadnt|has not|have not|had not|didnt|did not) (?:yet |even |ever )?"
    r"(?:arrived|turned up|shown up|showed up|been delivered)|fiasco",
    r"no (?:wifi|internet|broadband|signal|service|power|connection|network|water|heating|heat|"
    r"response|reply|answer|help|update|updates|refund|explanation|apology|respect)",
    r"complain\w*|compensation|money back|escalate",
    # patience run out: "i refuse to put up with it any longer" ("i cant stay any longer" is only leaving)
    r"(?:cant|cannot|wont|will not|refuse to|not) (?:wait|waiting|put up with|putting up with|tolerate|accept|"
    r"stand|pay|paying) (?:\w+ ){0,3}any longer",
    # a figure on the account that is wrong: "the amount on my invoice is wrong"
    r"(?:bill|bills|invoice|statement|charge|charges|amount|balance|reading|price|total) "
    r"(?:is|was|are|were|has been|looks|seems) (?:\w+ )?(?:wrong|incorrect)",
    # harm done or promises broken, told without anger words
    r"ruin(?:ed|ing|s)?|(?:make|made|making) me (?:late|miss|wait|pay)|(?:was|is|were|it was) supposed to|"
    r"(?:do|does|did) not (?:reply|respond|answer)|(?:dont|doesnt|didnt|never) (?:reply|respond|answer)|"
    r"(?:you|they) (?:dont|never|wont) (?:even |ever )?listen|"
    # asking the company why it fails to act: "why dont you ever phone back", "why wont they just pay me"
    r"why (?:dont|didnt|wont|cant) (?:you|they) (?:ever|even) \w+|"
    r"why (?:dont|didnt|wont|cant) (?:you|they) (?:just )?(?:call|ring|phone|reply|answer|respond|refund|fix|repair|"
    r"sort|send|pay|credit|listen|get back)(?: \w+)? (?:me|us|my|our)\b|"
    r"nothing works|no worky|(?:stop|quit) (?:asking|sending|hassling|charging|calling|emailing|spamming)|"
    r"(?:apps?|site|website|servers?|system|service|internet|wifi|network|power) (?:is |are |was |went )?down|"
    r"(?:hrs|hours|mins|minutes) late|declined|what gives|whats going on with|(?:fix ?it|fix this)",
    # sarcasm that usually introduces a grievance: "love how it ...", "thanks a lot" ("great job" is
    # as often real praise, so it is only a weak cue below)
    r"way to go|"
    r"(?:love|loving|gotta love|dont you love) (?:it )?(?:when|how) (?:you|u|they|my|the|your|i|it)|"
    r"thanks a lot|just what i needed|sarcasm",
    # not getting what was paid for or promised
    # "it may not get there in time": a possibility, not something withheld
    r"(?:still|never|(?<!might )(?<!may )(?<!can )(?<!could )not|havent|hasnt|didnt) (?:\w+ )?"
    r"(?:got|getting|gotten|get|receive|receiving)(?! enough)|"
    r"still (?:nothing|no)|nothing yet|(?:still|got|been|being|keep getting) charged|charging me|"
    r"charged me|bill shock|hidden (?:fees|charges|costs)|price (?:hike|rise|increase)",
    r"(?:sent|delivered|shipped|went|going) to the wrong|(?:wrong|incorrect) (?:state|city|country|house|"
    r"person|colour|color|one|flat|door)",
    r"(?:cant|cannot|couldnt|unable to|not able to) (?:even )?(?:get|boot|seem to|access|log|sign|"
    r"reach|contact|download|watch|stream|call|book|cancel|check in|activate|authori[sz]e|verify|redeem|"
    r"unlock|reset|register|submit|upload)",
    # "ive been trying but im not up to it" is the speaker's own effort
    r"(?:been|keep|kept|have been|ive been) trying(?! but| hard| my best)|refus\w+|"
    r"ignor(?:e|ed|ing|es) (?:me|my|us|our)|"
    # judged, not merely mentioned: "its been a nightmare", "what a mess" (not "told a joke", "a mess to tidy")
    r"(?:such a|what a|total|complete|absolute|utter|(?:is|was|its|been|thats|this) (?:a|an)) "
    r"(?:nightmare|disaster|mess|joke)|disappointment",
    r"(?:so|really|very|smells|smell|smelt|tastes?|looks?) (?:bad|awful|horrible|disgusting)|"
    r"why (?:is|are|does|do|isnt|arent|doesnt|dont|has|have) (?:my|our) ",
    # a payment or a login refused, and being moved off a booking
    r"(?:wont|wouldnt|doesnt|didnt|will not|would not|refuses to|refused to) take (?:my|our|the) (?:card|payment|"
    r"password|pin|code|details|money|voucher|coupon|deposit)(?! (?:until|till|before|yet|twice)\b)|"
    r"bumped (?:me|us) (?:off|down)|bumped (?:me|us) (?:onto|on to|to) (?:a |the )?(?:later|next|another|different)",
    r"no ?(?:one|body) (?:(?:even|ever|actually|really|once|still|just|apparently|seriously) )?"
    r"(?:replies|replied|answers|answered|responds|responded)(?! the door)",
    r"overcharg\w*|double charged|charged (?:me )?(?:twice|double|again|for)|wrong "
    r"(?:item|order|size|bill|amount|charge|address|number)",
    r"(?:been|kept|keep) (?:waiting|on hold)|on hold|waiting (?:for|since) (?:ages|hours|days|weeks|months|"
    r"over|more than|\w+ (?:hours|days|weeks|months|minutes))|wait time",
    r"keeps? (?:happening|dropping|cutting|failing|breaking|crashing|freezing|getting|saying|showing|"
    r"charging|sending|telling)|every (?:single )?time|over and over|yet again|once again|all the time",
    r"(?:for|since|(?:times|twice|again) in) (?:the )?(?:past|last) (?:\w+ )?(?:hours|days|weeks|months|minutes)|"
    # elapsed time and things that used to work: "its been three weeks", "it was working fine yesterday"
    # ("its been two years since i moved" is a life event, so not years)
    r"its been (?:like |over |almost |nearly |about |more than )?(?:\d+|a few|a couple of|a|an|one|two|three|four|"
    r"five|six|few|couple of) (?:hours|days|weeks|months)|"
    # a device or service that used to work, not a person who was at work ("i was working last night")
    r"(?<!\bi )(?<!\bhe )(?<!\bshe )(?<!\bwe )(?<!\bthey )(?<!\byou )(?<!\bwho )was (?:\w+ )?working "
    r"(?:fine |perfectly |ok |okay )?(?:last|yesterday|before|until|this morning|earlier)|"
    r"(?:hours|days|weeks|months) (?:ago|later|now)",
    r"your (?:staff|people|app|website|site|system|customer service)|customer service",
    r"angry|annoyed|annoying|frustrated|frustrating|upset|disappointed|disappointing|"
    r"unhappy|irritated|irritating|mad|hated|sucks|suck|stinks|terrible|horrible|awful|"
    # hating a food or a chore is taste; hating how something is done, or a service, is a grievance
    r"(?:hate|hates) (?:it|this|that|how|when|the way|your|you|waiting|being|having to|dealing)|"
    r"dreadful|pointless|unfair|not fair|fix it|sort it out|"
    # things gone, broken promises
    r"disappeared|vanished|nonexistent|non existent|(?:was|were|they|had|been) promised|"
    r"promised (?:for|by|me|us|delivery)|lack of (?:\w+ )?(?:service|support|communication|response|engagement|"
    r"care|help|information|updates?)|take (?:some |any )?action",
    # impolite or dishonest treatment, sluggish apps, calls that never come back
    r"impolite|disrespectful|condescending|dismissive|shady|sketchy|dodgy|deceptive|false advertising|"
    r"laggy|lagging|buffering|throttl\w*|not (?:very |at all |even )?helpful|of no help|no help at all|"
    r"no (?:call|phone call|callback|call back|reply|response) back|"
    r"(?:called|rang|phoned|emailed|messaged|contacted|chased|asked|requested|reported|written|wrote) "
    r"(?:you |them )?(?:\w+ )?(?:\w+ )?(?:times|twice)",
    # run-together hashtags and chat shorthand ("#epicfail" is matched above): "#nothappy",
    # "#worstservice", "smh"
    r"\w+(?:worst|nothappy|badservice|sucks|ripoff)\w*|(?:worst|nothappy|badservice|ripoff)\w+|smh",
    # calm reports of a failing service: silence after contact, blocked actions, devices that fail on
    # their own, dirty or unsafe premises, abuse, being passed around
    r"(?<!any )(?<!no )(?<!not having the )(?:serious|massive|major|huge|big|systemic|ongoing|same|constant|"
    r"recurring) (?:issue|issues|problem|problems)|having (?:issues|problems) with (?:my|our|your)|"
    r"got nothing|heard nothing|(?:and|but|still|yet) nothing (?:has |had |ever )?happen(?:ed|s|ing)|"
    r"(?:not|wont|doesnt|dont|didnt|will not|does not) allow(?:ing)? (?:me|us)|"
    r"not allowing|no (?:confirmation|notification|tracking|receipt)|"
    r"(?:could not|couldnt|cant|cannot) be (?:contacted|reached)|racis\w+|abus(?:ing|ive|ed) (?:me|us)|harass\w*|"
    r"(?:told|telling|tell) (?:me |us )?lies|(?:all|more|nothing but) lies|drains? (?:my|the) battery|"
    r"battery drain\w*|(?:off|down) (?:on its own|by itself|randomly)|(?:coming|falling|fell|came) apart|"
    r"logs? me out|logged me out|errored|dirty|filthy|unsafe|unhygienic|"
    r"stale|dangerously|should (?:have|ve) (?:received|arrived|been (?:delivered|sent|fixed|refunded|credited))|"
    r"downgraded|(?:losing|lost) (?:trust|faith)|round in circles|"
    r"(?:passed|pushed|bounced|transferred) (?:me |us )?(?:around|about|back and forth|from one)|"
    r"(?:mins|minutes|hours|hrs) (?:on )?hold|not a happy (?:customer|camper)|(?:stops|stop) (?:\w+ )?working|"
    # only an adverb may sit between: "my son was born disabled" is no account action
    r"(?:got|been|was|were|account|card) (?:(?:just|now|also|then|completely|permanently|temporarily|wrongly) )?"
    r"(?:banned|suspended|blocked|deactivated|disabled|frozen|hacked)",
    # blind round (general knowledge of complaint calls across banking, telecoms, energy, retail, travel,
    # insurance, software and healthcare admin). Money taken twice or without leave:
    r"(?:billed|debited|invoiced|paid|taken|took|charging|billing) (?:me |us |it |the money |the payment |my money )?"
    r"(?:twice|two times|three times|double)(?! (?:a|per|each|every) (?:day|week|month|year)| daily| weekly)|"
    r"(?:two|duplicate|double) (?:payments|charges|debits|direct debits|transactions) (?:for|on|from|went|came|taken)|"
    r"(?:payment|money|direct debit|debit|amount) (?:has |was |had )?(?:gone|went|came|been taken|taken) out "
    r"(?:\w+ )?(?:twice|again|early|without)",
    # changes made without asking: prices raised, services cancelled or switched off
    r"without (?:any )?(?:prior )?(?:notice|warning)|without (?:even )?(?:informing|notifying|asking|warning|"
    r"consulting|contacting|letting) (?:me|us)|without (?:my|our) (?:consent|permission|knowledge|authori[sz]ation|"
    r"agreement|say so)|"
    r"(?:put|putting|puts|bumped|bumping|hiked|hiking|raised|raising|increased|increasing|doubled|tripled) "
    r"(?:up )?(?:my|our) (?:\w+ )?(?:bill|bills|price|prices|premium|premiums|tariff|rate|rates|payments?|"
    r"direct debit|fees?|subscription|rent)|"
    r"(?:my|our) (?:\w+ )?(?:bill|premium|tariff|direct debit|monthly payment|renewal|subscription)s? "
    r"(?:has |have |had |just |suddenly )*(?:gone up|went up|shot up|jumped|doubled|tripled|nearly doubled)",
    # cut off, left without a supply
    # (also for whoever the caller speaks for: "you cut her phone off")
    r"disconnected|(?:switched|turned|shut|cut) off (?:my|our|his|her|their) (?:\w+ )?(?:gas|power|electricity|"
    r"water|supply|internet|broadband|phone|line|service|account|card)|"
    r"(?:switched|turned|shut|cut) (?:my|our|his|her|their) (?:\w+ )?(?:gas|power|electricity|water|supply|internet|"
    r"broadband|phone|line|service|account|card) off|(?<!got )(?<!been )(?<!was )cut (?:me|us|her|him|them) off|"
    r"without (?:any )?(?:power|internet|broadband|signal|heating|hot water|gas|electricity|water|wifi|a phone line|"
    r"a landline) (?:for|since)|"
    r"keeps? (?:disconnecting|buffering|rebooting|restarting|resetting|switching off|losing|declining|"
    r"rejecting|logging me out|kicking me (?:out|off))",
    # goods wrong, damaged or incomplete; bookings and belongings lost
    r"(?:sent|gave|given|delivered|charged|billed|quoted|booked) (?:me |us )?(?:the |a )?"
    r"(?:completely |totally )?wrong|"
    r"(?:wrong|incorrect) (?:product|model|parcel|package|meal|dish|room|price|tariff|details|account|flight|seat|"
    r"ticket|part|reading|meter reading|delivery|prescription|medication|dosage|diagnosis)|"
    r"arrived (?:\w+ )?(?:smashed|dented|opened|open|empty|incomplete|leaking|in pieces|soaking wet|crushed)|"
    r"dead on arrival|(?:half|some|part|parts|pieces|bits) of (?:my|the|our) (?:order|items|parcel|delivery) "
    r"(?:is |was |are |were )?missing|"
    r"(?:you|they|youve|theyve|you have|they have|the airline|the hotel|the hospital|the surgery) (?:\w+ )?"
    r"(?:lost|misplaced|mislaid) (?:my|our)|"
    r"(?:luggage|bag|bags|suitcase|suitcases|parcel|package|booking|reservation|paperwork|application|claim|"
    r"referral|prescription|records|file|forms?) (?:has |have |was |were |got |has been |have been )?"
    r"(?:lost|misplaced|mislaid|gone missing|gone astray)",
    # promises of a call back never kept, and being passed around
    r"(?:was|were|been) told (?:that )?(?:someone|somebody|they|you|an engineer|a manager|the manager|id|wed|i would|"
    r"we would) (?:would |will |d |get |be )?(?:\w+ )?(?:call|ring|phone|get back|email|contact|be in touch)|"
    r"(?:no ?one|nobody|you never|they never|no one ever|nobody ever) (?:ever )?(?:gets|get) back|"
    r"department to department|from one (?:department|team|person|agent|adviser|advisor) to "
    r"(?:another|the next)|(?:spoken|spoke|talked|been transferred|been passed) (?:to )?"
    r"(?:separate|several|multiple|countless|numerous|so many) (?:different |separate )?"
    r"(?:people|agents|advisers|advisors|departments|teams|operators|staff)|"
    # a long time spent in a queue or on the line: "ive been on the phone for forty minutes" (not "only ... for
    # two minutes", nor time spent on the phone with someone else)
    r"(?:(?:in|on) (?:the|a|your|this) queue|(?<!only )(?:been|sat|sitting|waited|waiting|stuck|hanging) on "
    r"(?:the|this) (?:phone|line)) for (?:almost |nearly |over |more than |about |well over |at least )?"
    r"(?:ages|hours|half an hour|an hour|\w+ hours|(?:ten|fifteen|twenty|thirty|forty|fifty|\d\d+)(?: \w+)? "
    r"(?:minutes|mins))\b(?! with)",
    # misled or mis-sold, and security failures
    r"misled|mislead(?:ing)? (?:me|us)|mis ?sold|missold|mis selling|lied about|(?:false|empty|broken) promises|"
    r"data breach|breach of (?:my |our )?(?:data|privacy)|identity theft|fraudulent|"
    r"unauthori[sz]ed (?:transactions?|payments?|charges?|access|debits?|withdrawals?)|"
    r"(?:my|our) (?:\w+ )?(?:data|details|information) (?:was |were |has been |have been |got )?"
    r"(?:leaked|stolen|compromised|exposed)",
    # loyalty betrayed, escalation and threats to go elsewhere
    r"loyal customers?|after all (?:these|those|the) years|loyalty penalty|"
    r"(?:better|cheaper) (?:deals?|prices?|offers?|rates?) (?:for|to) new customers|new customers get",
    r"(?:speak|talk|speaking|talking) (?:to|with) (?:(?:a|your|the) )?(?:boss|team leader|line manager|duty manager|"
    r"someone (?:more )?senior|somebody (?:more )?senior|someone in charge|someone higher up|person in charge|ceo|"
    r"chief executive|head office)|(?:talk|talking|speaking) (?:to|with) (?:a|your|the) (?:manager|supervisor)|"
    r"(?:put|transfer|pass|escalate|get) me (?:through )?(?:to|onto) (?:a|your|the) (?:manager|supervisor|boss|"
    r"team leader|complaints)|(?:i )?(?:want|need|demand) (?:a|your|the) (?:manager|supervisor)\b|"
    r"i demand (?:a|an|my|to|that|you)|"
    r"(?:ofcom|ofgem|ofwat|the fca|financial conduct authority|the regulator|watchdog|better business bureau|"
    r"consumer rights|small claims|(?:to|contact|tell|call|write to) the (?:press|papers|newspapers|media))|"
    r"(?:leave|leaving|write|writing|post|posting|give|giving) (?:you |your company )?(?:a )?(?:bad|negative|terrible|"
    r"one star|1 star|poor|scathing) (?:review|rating|feedback)|(?:do|file|raise|request|doing) a charge ?back|"
    r"(?:go|going|shop|shopping|bank|banking|insure|"
    r"(?:take|taking|took) (?:my|our) (?:business|custom|money|account)s?) elsewhere|"
    r"(?:never|not|wont|will not|wouldnt|would never|never ever) (?:be )?(?:use|using|shop|shopping|order|ordering|buy|"
    r"buying|fly|flying|book|booking|bank|banking|deal|dealing|recommend|recommending) (?:\w+ )?(?:with |from )?"
    r"(?:you|your (?:company|firm|store|shop|airline|bank|service)|this (?:company|firm|store|shop|airline|bank|"
    r"place|hotel|restaurant)|them) (?:again|ever again|to anyone|to anybody)",
    # exasperation and shoddy work, told without swear words
    r"(?:this|it|this whole thing) is (?:an? )?(?:absolute |complete |total |bloody |utter )?joke|"
    r"its (?:an? )?(?:absolute |complete |total |bloody |utter )joke|"
    r"absurd|ludicrous|laughable|farcical|farce|shoddy|substandard|sub standard|sloppy|slapdash|botched|bodged|"
    # (a person's character, "a dishonest banker", is left out: these judge how the speaker was treated)
    r"negligen\w+|(?<!be )irresponsible|(?<!not )(?<!sound )(?<!sounds )(?<!seem )(?<!seems )unreasonable|"
    r"unjustified|(?:thats|that is|this is|its) (?:just |simply |really )?not on$|"
    r"(?:bunch of|absolute|total) cowboys|cowboy (?:builders?|outfit|company|firm|operation)",
]

# Problem words that are as often neutral ("whats the problem", "do you have any trouble"):
# half weight, so they need clear company to make a turn venting.
VENT_MILD = [
    r"issue|issues|problem|problems|trouble|slow|hurry up|i cant believe|seriously",
    # blind round: a long custom is as often mentioned to ask for a deal as to complain
    r"been (?:a (?:customer|member)|banking with you|insured with you) (?:for|since)",
]

# Weak cues: only count alongside something else.
VENT_WEAK = [
    r"(?:great|nice|good|brilliant|fantastic|awesome|amazing|stellar) (?:job|work|going)|"
    r"again|still|never|always|nothing|nobody|no one|even|please help|pls help|any help|help me|"
    r"help please|refund|cancel|what is going on|whats going on|whats up with|why|come on|your company|"
    r"your service",
]

# Subjects of a "why" about a person's own choices ("why did you apply", "why isnt she coming"), and the
# first-person words that instead make it about the speaker's loss ("why did you cancel my order").
PERSON_SUBJECTS = frozenset("you u he she we".split())
# The verbs of such a personal choice, and adverbs that may come before them ("why didnt she ever apply").
PERSONAL_CHOICE_VERBS = frozenset(
    """go goes going went come comes coming came choose chose chosen apply applied study studied move moved
    moving join joined stay stayed quit marry married visit visited decide decided become became travel
    learn learned learnt want wanted like liked live lived try tried sit""".split()
)
WHY_ADVERBS = frozenset("not just ever even really actually still never also".split())
FIRST_PERSON = frozenset("i me my mine myself we us our ours im ive id ill weve wed".split())

# Words that soften or reverse apparent venting: gratitude and politeness closures.
THANKS = r"thank you|thanks|thank u|cheers"
CALM = [
    THANKS + r"|much appreciated|appreciate it|no problem|no worries|"
    r"thats fine|thats great|perfect|brilliant|lovely|wonderful|have a (?:good|nice|great)|no need to worry",
    # a service desk's greeting or offer: "what can i do for you", "how may i help you"
    r"what can i do for you|how (?:can|may|could) (?:i|we) help(?: you)?",
]

# A thank-you that ends a message, and the words that say its problem is still there: a complaint that opens a
# contact and signs off "... still not fixed thanks" is polite, not settled, so the thanks does not calm it
# ("its working now thanks" and "thanks for fixing it" still do).
SIGN_OFF_THANKS = r"(?:many )?(?:" + THANKS + r")(?: so much| very much| a lot| in advance)?$"
UNRESOLVED = r"still|yet|never|again|keeps?|no longer|any ?more"

# Extra weak cues that count only in the turn that opens a contact (no earlier turns): negation
# and blame words that, several together, say why someone got in touch with a company.
OPENING_GRIEVANCE_CUES = [
    r"not|no|cant|cannot|wont|doesnt|didnt|isnt|havent|hasnt|yet|fix|fixed|charged|paid|customer service|"
    r"issue|issues|problem|disappointed|supposed to|should have|instead",
]

# Bad luck that is nobody's fault (illness, pain, the speaker's own mishaps) and the speaker owning a fault
# or apologising: subtracted from the venting score; anger words inside these phrases do not count.
PERSONAL_MISFORTUNE = [
    r"(?:worst|terrible|awful|horrible) (?:\w+ )?(?:headache|toothache|stomach ?ache|backache|cold|flu|cough|pain)|"
    r"headache|toothache|stomach ?ache|backache|ache|aches|pain|painful|sore|hurts?|fever|cough\w*|flu|"
    # "ill" alone is mostly "I'll" once apostrophes are gone: illness needs a copula or a feeling verb
    r"infection|sick|(?:im|was|is|are|be|been|got|feel|feeling|felt|fell|very|so|seriously|terribly|really|quite) ill|"
    r"aching|hospital|doctor|injur\w*|bleeding|allerg\w*|jet lag|nervous|worried|scared|"
    r"im (?:so |such an? )?(?:terrible|hopeless|useless) at|my (?:own )?fault|i feel (?:\w+ )?(?:\w+ )?stupid|"
    # a broken bone or a failed exam is bad luck too
    r"(?:arm|leg|wrist|ankle|finger|toe|nose|rib|ribs|hip|bone|bones|tooth|heart) (?:is |was |got |must be )?broken|"
    r"broken (?:arm|leg|wrist|ankle|finger|toe|nose|rib|ribs|hip|bone|bones|tooth|heart)|"
    r"fail(?:ed)? (?:my|your|his|her|the) (?:\w+ )?(?:exam|exams|test|tests|course|interview)|"
    # the speaker apologising, breaking bad news or owning a mishap is not the aggrieved party
    # (a customer's polite "sorry but my order never came" still complains)
    r"(?:i apologi[sz]e|we apologi[sz]e|(?:i am|im) (?:terribly |very |so |really )?sorry)"
    r"(?! (?:\w+ )?but (?:my|the|your|this|its|it|i|you)\b)|"
    r"(?:i|we) (?:have |had |just )?(?:broken|broke|spilled|spilt|dropped|smashed) (?:my|the|a|an|some|your)",
]

# Problem words that are not the speaker's own grievance, blanked out before the venting lexicons are
# matched: a feeling seen in someone else ("you seem upset", "she looked really annoyed") and a mishap
# that is only possible or supposed ("if the shirt doesnt fit", "that would ruin it", "it can be broken").
NOT_OWN_GRIEVANCE = [
    r"(?:seem|seems|seemed|look|looks|looked|sound|sounds|sounded)(?: to be)?(?: so| really| very| a bit| quite)? "
    r"(?:upset|angry|annoyed|frustrated|mad|disappointed|unhappy|irritated|cross)",
    r"(?:gets|(?:he|she|they) (?:get|got)) (?:so |really |very |a bit )?(?:upset|angry|annoyed|frustrated|mad|cross)",
    r"(?:would|could|might|may|can) (?:be |get )?(?:ruin\w*|broken|damaged|cancell?ed|delayed)",
    # a delay announced ahead ("there will be a short delay"), not one suffered
    r"(?:there will|there may|there might|therell) be (?:a )?(?:\w+ )?delays?",
    # ... but a condition followed by a threat is an ultimatum: "if this isnt sorted by monday im leaving"
    r"if (?:\w+ ){1,3}(?:doesnt|dont|isnt|wasnt|werent|didnt) \w+"
    r"(?!.*\b(?:ill|im|i will|i am|were|we will|i want|i shall) (?:\w+ )?(?:cancel|cancell?ing|leave|leaving|"
    r"switch|switching|complain|complaining|report|close|closing|go elsewhere|take|taking|sue)\b)",
    # what something or someone is reputed to be, not a broken promise: "its supposed to be good for you"
    # (present tense only: "it was supposed to be better than this" is a broken promise)
    r"(?:is|its|are|theyre|hes|shes|thats) supposed to be (?:\w+ )?(?:good|great|nice|fun|easy|hard|difficult|"
    r"healthy|safe|famous|popular|the best|"
    r"better|lucky|beautiful|delicious|clever|skilled|wonderful|amazing)",
    # a suggestion ("why dont we walk", "why dont you try the green jumper"), or a third person's own choices
    # ("why isnt she coming"); not "why dont you ever phone me back", "why didnt he fix the cooker"
    r"why dont we|why dont (?:you|we) let (?:me|us)|"
    r"why dont you\b(?! (?:ever|even|just)\b)(?!(?: \w+){0,3} (?:me|us|my|our)\b)",
    r"why (?:isnt|wont|doesnt|didnt|cant) (?:he|she) (?:(?:" + "|".join(sorted(WHY_ADVERBS))
    + r") )?(?:" + "|".join(sorted(PERSONAL_CHOICE_VERBS)) + r")\b(?!(?: \w+){0,4} (?:me|my|us|our)\b)",
    # not knowing a name or a number is the speaker's own memory, not a device that fails to recognise a card
    # ("i dont recognise that number"; "i dont recognise this payment" is still a grievance)
    r"(?:i|we) (?:dont|do not|didnt|did not) (?:\w+ )?recogni[sz]e (?:the|that|this|his|her|their|your) "
    r"(?:name|number|voice|address|person|caller|company|face)",
    # asking what is wrong: "lets see what the problem is", "whats the trouble"
    r"(?:what|whats) (?:the|your|his|her|their) (?:problem|trouble|issue)(?: is| was)?",
]
