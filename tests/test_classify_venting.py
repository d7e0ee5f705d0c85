"""Venting-side behaviour of dialog.classify: calm service-failure reports, own mishaps, agents' wording.

Own example sentences, written for these tests (no evaluation text).
"""

from __future__ import annotations

import pytest

from dialog.classify import UtteranceClassifier, normalize

_GREETING = [("agent", "thanks for calling northwind how can i help")]


@pytest.mark.parametrize("text", [
    "i emailed support on friday and have heard nothing since",
    "the kettle handle fell apart after a month",
    "your app logged me out again and errored when i tried to pay",
    "its been three weeks and the engineer still has not come",
    "the router was working fine until yesterday",
    "my account got suspended for no reason",
    "the waiting room was filthy and the toilets were dirty",
    "the store wont allow us to return it",
    "we have had big problems with the meter since it was fitted",
])
def test_calm_service_failure_reports_are_venting(clf: UtteranceClassifier, text: str) -> None:
    assert clf.classify(text, "customer", context=_GREETING).phase == "venting"


@pytest.mark.parametrize("text", [
    "i think i broke my wrist playing football",
    "sorry i have spilled some juice on your sofa",
    "we got lost on the way back from the lake",
    "i feel a bit stupid about it now",
    "ill call my sister later",
    "how many times did you visit paris",
    "the courier may not get there in time",
    "dont open the window its cold",
    "my cousin works as a lawyer in town",
])
def test_own_mishaps_and_other_senses_are_not_venting(clf: UtteranceClassifier, text: str) -> None:
    assert clf.classify(text, context=[("agent", "how was your weekend")]).phase != "venting"


@pytest.mark.parametrize("text", [
    "stop rushing me i said i would do it",
    "you scared me half to death coming in like that",
    "the least you could do is say sorry",
])
def test_reproaches_are_venting(clf: UtteranceClassifier, text: str) -> None:
    assert clf.classify(text, context=[("agent", "what is it now")]).phase == "venting"


def test_a_polite_sorry_does_not_hide_a_complaint(clf: UtteranceClassifier) -> None:
    assert clf.classify("i apologise but the app keeps crashing", context=_GREETING).phase == "venting"
    assert clf.classify("im so sorry i dropped your phone", context=_GREETING).scores["venting"] < 1.0


def test_an_agents_bad_news_is_not_the_agents_grievance(clf: UtteranceClassifier) -> None:
    text = "unfortunately the delivery was delayed and the parcel is damaged"
    assert clf.classify(text, "agent", context=_GREETING).phase != "venting"
    assert clf.classify(text, "customer", context=_GREETING).phase == "venting"


# --- second round: reproaches aimed at the listener, and what is not the speaker's grievance ---------


@pytest.mark.parametrize("text", [
    "i cant believe you didnt tell me about the party",
    "fine if thats the way you want it go on your own",
    "knock it off i am trying to sleep",
    "dont give me excuses i want the shelf fixed by friday",
    "you cant do that to me",
    "i wont wait any longer for that parcel",
])
def test_reproaches_at_the_listener_are_venting(clf: UtteranceClassifier, text: str) -> None:
    assert clf.classify(text, context=[("agent", "calm down a moment")]).phase == "venting"


@pytest.mark.parametrize("text", [
    "why did she move to leeds",
    "why isnt she coming to the picnic",
    "why dont we walk to the station",
])
def test_an_opening_why_about_a_persons_choices_is_not_venting(clf: UtteranceClassifier, text: str) -> None:
    assert clf.classify(text).phase != "venting"


@pytest.mark.parametrize("text", [
    "why did you cancel my booking",
    "why is my bill so high this month",
    "why are you treating me like this",
    "why didnt you fix it",
    "why didnt he fix the boiler",
    "why dont you just refund me",
])
def test_an_opening_why_about_the_speakers_loss_is_still_venting(clf: UtteranceClassifier, text: str) -> None:
    assert clf.classify(text).phase == "venting"


@pytest.mark.parametrize("text", [
    "you look really annoyed is everything ok",
    "if the jacket doesnt fit can i swap it next week",
    "a late frost would ruin the apple harvest",
    "these glasses could be damaged in the post so pack them carefully",
    "good morning reception what can i do for you",
    "the old castle is supposed to be beautiful in spring",
    "it was an unbelievable concert",
    "lets take the back off and find what the trouble was",
    "why dont you try the green jumper",
])
def test_others_feelings_hypotheticals_and_surprise_are_not_venting(clf: UtteranceClassifier, text: str) -> None:
    assert clf.classify(text, context=[("agent", "how was your weekend")]).phase != "venting"


def test_a_link_is_ignored(clf: UtteranceClassifier) -> None:
    assert clf.classify("why are you treating me like this https://example.com/a1").phase == "venting"


def test_a_third_persons_failure_towards_the_caller_is_still_venting(clf: UtteranceClassifier) -> None:
    ctx = [("agent", "the engineer was booked for nine")]
    assert clf.classify("why wont he call me back", context=ctx).phase == "venting"
    assert clf.classify("why isnt she coming to the picnic", context=ctx).phase != "venting"


# --- third round: ordinary contact-centre sentences (review findings), own wording ------------------------

_MID = [*_GREETING, ("customer", "hi there"), ("agent", "ok let me have a look at that for you")]


@pytest.mark.parametrize(("speaker", "text"), [
    ("agent", "i wont keep you any longer"),
    ("customer", "i cant stay any longer i have to collect my daughter"),
    ("agent", "sadly you cant do that"),
    ("agent", "im afraid you cant do that its against our policy"),
    ("agent", "dont worry i wont hang up on you"),
    ("agent", "you could at least try restarting it first"),
    ("customer", "could you rush us a new card please"),
    ("customer", "i cant believe you still have my old number"),
    ("customer", "i was working last night so i missed your call"),
    ("customer", "its been two years since i moved here"),
    ("customer", "i heard a word about it at work"),
    ("customer", "dont worry nothing happened"),
    ("customer", "my uncle was left disabled after the accident"),
    ("customer", "the cat got shut upstairs"),
    ("customer", "oh what the hell ill take both"),
    ("customer", "how many times can i change the booking date"),
    ("customer", "i want to cancel my membership"),
    ("customer", "oh dont use that one"),
])
def test_friendly_and_neutral_turns_are_not_venting(clf: UtteranceClassifier, speaker: str, text: str) -> None:
    assert clf.classify(text, speaker, context=_MID).phase != "venting"


@pytest.mark.parametrize("text", [
    "they dont accept my card",
    "my direct debits dont show on the statement",
    "i dont hear anything on the line",
    "if this isnt fixed by tomorrow im cancelling",
    "the new router was supposed to be better than this",
    "why dont you ever phone me back",
    "why dont you just refund me",
    "im sorry to say your website is terrible",
    "nobody listens to me",
    "youre not listening to me",
    "my bill is wrong again",
    "the engineer didnt turn up",
    "ive banked with you for twelve years and this is how you treat your customers",
])
def test_complaints_mid_call_are_venting(clf: UtteranceClassifier, text: str) -> None:
    assert clf.classify(text, context=_MID).phase == "venting"


def test_a_calm_cancellation_request_is_not_venting_but_a_threat_is(clf: UtteranceClassifier) -> None:
    assert clf.classify("i want to cancel my membership", context=_GREETING).phase != "venting"
    assert clf.classify("if nobody sorts this out im cancelling my membership", context=_MID).phase == "venting"


def test_the_blanking_placeholder_is_not_a_word(clf: UtteranceClassifier) -> None:
    # the blanked "if it doesnt fit" must not let "(?:\w+ )?" patterns reach across it
    blanked = clf._not_own.sub(" - ", normalize("if it doesnt fit"))
    assert not any(c.isalnum() or c == "_" for c in blanked)


# --- fourth round (blind): how customers voice grievances across sectors, own wording -------------------


@pytest.mark.parametrize("text", [
    # patience run out, temper, British exasperation
    "honestly this has gone beyond a joke",
    "im at my wits end with this broadband",
    "this is the final straw",
    "im losing my patience with your company",
    "i keep getting fobbed off every time i ring",
    "stop messing me about and give me a straight answer",
    "you treat your customers like dirt",
    "the renewal price is extortionate",
    "dont patronise me i know how a router works",
    "this is an absolute joke",
    "the repair work was shoddy",
    "that is simply not on",
    # money taken twice or without leave, prices raised
    "you billed me twice for the same month",
    "the direct debit went out twice this month",
    "you raised my premium without any warning",
    "my monthly payment has suddenly shot up",
    # supplies cut off, devices failing
    "they switched off our gas without even informing us",
    "weve been without heating since monday",
    "the tv box keeps rebooting",
    # goods wrong, damaged or incomplete; things lost
    "you sent me the wrong size shoes",
    "the vase arrived smashed",
    "half of my order was missing",
    "the airline lost our suitcases",
    "my referral has gone missing at the surgery",
    # broken callbacks, being passed around
    "i was told someone would ring me back on tuesday",
    "nobody ever gets back to me",
    "ive been passed from department to department all morning",
    "ive spoken to several different advisers about this",
    # mis-selling and security failures
    "i was mis sold this insurance",
    "your agent misled me about the contract length",
    "there are unauthorised payments on my card",
    "my details were leaked in your data breach",
    # loyalty, escalation, threats to leave
    "ive been a loyal customer for ten years",
    "new customers get cheaper deals than people who stayed",
    "put me through to your supervisor",
    "i want to talk to someone more senior",
    "im reporting you to the regulator",
    "ill be leaving a one star review",
    "ill be taking my business elsewhere",
    "i will never use your company again",
])
def test_grievances_across_sectors_are_venting(clf: UtteranceClassifier, text: str) -> None:
    assert clf.classify(text, context=_MID).phase == "venting"


@pytest.mark.parametrize(("speaker", "text"), [
    ("agent", "im sorry youve been on hold so long is there anything else"),
    ("agent", "let me talk to my supervisor about that for you"),
    ("agent", "i can put you through to billing now"),
    ("customer", "thanks so much youve been really helpful"),
    ("customer", "the tablets are taken twice a day"),
    ("customer", "ive been a customer for ten years and id like to upgrade"),
    ("customer", "ive been with you for years can i get a better deal"),
    ("customer", "we went elsewhere for the holiday in the end"),
    ("customer", "we are never again going camping in march"),
    ("customer", "the film was about a dishonest banker"),
    ("customer", "it would be irresponsible to drive in this snow"),
    ("customer", "that doesnt sound unreasonable to me"),
    ("customer", "my nephew told a joke at the wedding"),  # mentioned, not judged
    ("customer", "the kids left a mess in the kitchen again"),
])
def test_friendly_uses_of_grievance_words_are_not_venting(
    clf: UtteranceClassifier, speaker: str, text: str
) -> None:
    assert clf.classify(text, speaker, context=_MID).phase != "venting"



# --- fifth round: found by reading dev errors for categories, then written as general call-centre patterns
# with our own sentences (see README "How the dev sets were used") -------------------------------------


@pytest.mark.parametrize("text", [
    "for crying out loud just send the part",
    "for goodness sake i gave you the reference already",
    "give me a break this is the fourth letter",
    "how could you let this happen to a pensioner",
    "how can you charge me for a visit nobody made",
    "you could at least send me a text when the van is late",
    "the least you can do is offer us a discount",
    "i dont want any more excuses i want the boiler working",
    "i wont put up with this any longer",
    "stop hurrying me i have not finished explaining",
    "ive been on the phone for forty minutes already",
    "weve been stuck in this queue for over an hour",
])
def test_exasperation_refusals_and_time_lost_are_venting(clf: UtteranceClassifier, text: str) -> None:
    assert clf.classify(text, context=_MID).phase == "venting"


@pytest.mark.parametrize(("speaker", "text"), [
    ("customer", "oh come on in the door is open"),
    ("customer", "how can you let me know the balance"),
    ("customer", "how could you tell the router was faulty"),
    ("customer", "could you give me a break down of the bill please"),
    ("agent", "you could at least give it a restart and see"),
    ("agent", "we wont accept returns after thirty days"),
    ("customer", "ive only been on the line for two minutes its fine"),
    ("customer", "ive been on the phone for an hour with my daughter so im all caught up"),
    ("customer", "the meeting could get cancelled if it snows"),
])
def test_coaxing_how_to_questions_advice_and_possible_mishaps_are_not_venting(
    clf: UtteranceClassifier, speaker: str, text: str
) -> None:
    assert clf.classify(text, speaker, context=_MID).phase != "venting"


@pytest.mark.parametrize("text", [
    "my refund still hasnt come through thanks",
    "the app keeps crashing when i try to pay many thanks",
    "the parcel never arrived thank you",
])
def test_an_opening_complaint_signed_off_with_thanks_is_venting(clf: UtteranceClassifier, text: str) -> None:
    assert clf.classify(text, context=_GREETING).phase == "venting"


@pytest.mark.parametrize("text", [
    "great customer service from the team thank you",
    "hi just to let you know the engineer fixed the fault thanks",
    "my broadband was down yesterday but its working now thanks",
    "the refund came through thanks a lot",
    "thanks again for fixing the fault so quickly",
])
def test_praise_and_resolved_problems_signed_off_with_thanks_are_not_venting(
    clf: UtteranceClassifier, text: str
) -> None:
    assert clf.classify(text, context=_GREETING).phase != "venting"


def test_a_fault_word_inside_an_own_mishap_is_no_grievance(clf: UtteranceClassifier) -> None:
    assert clf.classify("oh no i have broken the handle on your kettle", context=_MID).phase != "venting"
    # ... but a vulnerable customer's complaint still is one
    text = "im disabled and in pain and your engineer didnt turn up for the third time"
    assert clf.classify(text, context=_GREETING).phase == "venting"


def test_not_recognising_a_name_is_no_fault_but_an_unknown_payment_is_a_grievance(clf: UtteranceClassifier) -> None:
    assert clf.classify("sorry i dont recognise that number", context=_MID).phase != "venting"
    assert clf.classify("i dont recognise the name on the letter", context=_MID).phase != "venting"
    assert clf.classify("i dont recognise this payment on my statement", context=_MID).phase == "venting"
    assert clf.classify("the machine doesnt recognise my card", context=_MID).phase == "venting"


# --- sixth round: insults, unlawful or excessive charges, refused payments; a period of time is no grievance
# (a review narrowed each pattern to its frame; its near-misses are below)


@pytest.mark.parametrize("text", [
    "what you did was illegal and i will be reporting it",
    "what your company is doing is completely unlawful",
    "that late payment charge was a bit excessive wasnt it",
    "you took me for a sucker with that contract",
    "shut your mouth and put me through to someone who knows",
    "youre all a bunch of crooks",
    "honestly what a load of amateurs",
    "this has been a living nightmare",
    "im cross with you for cancelling it without asking",
    "i am sick to death of chasing this",
    "piss off",
    "the card reader wont take my card",
    "no one replied to my letter",
    "what on earth are you playing at",
    "you bumped us off the evening flight",
    "they switched our gas off",
    "you cut off my phone line",
    "ive rung you four times in the last two days",
])
def test_insults_and_unlawful_or_excessive_charges_are_venting(clf: UtteranceClassifier, text: str) -> None:
    assert clf.classify(text, context=_MID).phase == "venting"


@pytest.mark.parametrize(("speaker", "text"), [
    ("agent", "its illegal to record the engineer without telling him"),
    ("agent", "its illegal for us to share your details with anyone else"),
    ("agent", "i understand if youre upset with your previous provider"),
    ("customer", "is it illegal to drive without the insurance documents"),
    ("customer", "if my usage is excessive will you let me know"),
    ("customer", "im a sucker for a loyalty discount"),
    ("customer", "the phone holder has a sucker pad on the back"),
    ("customer", "my son wants to be one of the clowns at the fair"),
    ("customer", "do you insure amateurs"),
    ("customer", "what are you playing at the moment"),
    ("customer", "the engineer knocked but no one answered the door"),
    ("customer", "click the cross with your mouse"),
    ("customer", "police caught the thieves who took my bike"),
    ("customer", "in the last two weeks ive been working from home"),
    ("customer", "sorry im still not quite used to the new billing system"),
    ("customer", "were still not sure which plan we want"),
    ("customer", "the bank wont take the payment until the tenth"),
    ("customer", "they bumped us to business class for free"),
    ("agent", "the engineer will cut off the old line and connect the new one"),
    ("agent", "sorry i think i cut you off there"),
])
def test_rules_fondness_unreadiness_and_a_period_of_time_are_not_venting(
    clf: UtteranceClassifier, speaker: str, text: str
) -> None:
    assert clf.classify(text, speaker, context=_MID).phase != "venting"


def test_a_problem_for_the_past_days_is_still_a_grievance(clf: UtteranceClassifier) -> None:
    assert clf.classify("the line has been dead for the past three days", context=_MID).phase == "venting"


def test_a_disconnection_outweighs_the_illness_of_whoever_the_caller_speaks_for(clf: UtteranceClassifier) -> None:
    text = "my dad is in hospital and you cut his phone off without any warning"
    assert clf.classify(text, context=_MID).phase == "venting"
