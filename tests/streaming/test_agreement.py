"""LocalAgreement-2 on hypothesis sequences of the kind Whisper produces for a growing utterance."""

from emostream.streaming.agreement import LocalAgreement


def test_words_become_stable_when_two_hypotheses_agree_and_never_shrink():
    la = LocalAgreement()
    assert la.update(1, "Kids are tall") == ("", "Kids are tall")
    assert la.update(1, "Kids are talking by") == ("Kids are", "talking by")
    assert la.update(1, "Kids are talking by the door.") == ("Kids are talking by", "the door.")
    # a later hypothesis that changes a stable word does not take it back
    stable, unstable = la.update(1, "Kid's are talking by the door.")
    assert stable == "Kids are talking by" and unstable == "the door."
    assert la.update(1, "Kids are talking by the door.") == ("Kids are talking by", "the door.")  # agrees with no previous
    assert la.update(1, "Kids are talking by the door.") == ("Kids are talking by the door.", "")


def test_punctuation_and_case_do_not_block_agreement_and_a_new_utterance_starts_afresh():
    la = LocalAgreement()
    la.update(3, "Dogs are sitting.")
    assert la.update(3, "dogs are sitting, by") == ("dogs are sitting,", "by")
    assert la.update(4, "Hello") == ("", "Hello")


def test_stable_words_keep_their_first_spelling():
    la = LocalAgreement()
    la.update(1, "Hey, Phoebe check")
    assert la.update(1, "Hey, Phoebe check this") == ("Hey, Phoebe check", "this")
    assert la.update(1, "hey Phoebe, check this out") == ("Hey, Phoebe check this", "out")
