"""LocalAgreement-2: words are confirmed when two consecutive decodes agree on them."""

from __future__ import annotations

from auricle.engine.types import Word
from auricle.streaming.agreement import LocalAgreement, join_words, normalize_word


def words(*items: tuple[str, float]) -> list[Word]:
    """Words of 0.3 s each starting at the given times."""
    return [Word(start, start + 0.3, f" {text}") for text, start in items]


def test_first_decode_confirms_nothing():
    agreement = LocalAgreement()
    agreement.insert(words(("hello", 0.0), ("world", 0.4)))
    assert agreement.flush() == []
    assert join_words(agreement.tentative) == "hello world"


def test_common_prefix_of_two_decodes_is_confirmed():
    # Given a first decode
    agreement = LocalAgreement()
    agreement.insert(words(("ask", 0.0), ("not", 0.4), ("what", 0.8)))
    agreement.flush()
    # When the second decode agrees on the first two words only
    agreement.insert(words(("ask", 0.0), ("not,", 0.4), ("when", 0.8), ("your", 1.2)))
    confirmed = agreement.flush()
    # Then those two are confirmed (punctuation and case do not matter) and the rest stays tentative
    assert [normalize_word(w.word) for w in confirmed] == ["ask", "not"]
    assert join_words(agreement.tentative) == "when your"
    assert agreement.committed_time == confirmed[-1].end


def test_confirmed_words_are_not_confirmed_twice_when_decoded_again():
    agreement = LocalAgreement()
    for _ in range(2):
        agreement.insert(words(("one", 0.0), ("two", 0.4)))
        agreement.flush()
    # A later decode of the same buffer repeats the confirmed words, with slightly moved times.
    agreement.insert(words(("one", 0.05), ("two", 0.35), ("three", 0.8)))
    assert agreement.flush() == []
    agreement.insert(words(("one", 0.0), ("two", 0.4), ("three", 0.8), ("four", 1.2)))
    assert [normalize_word(w.word) for w in agreement.flush()] == ["three"]


def test_anchor_finds_the_confirmed_tail_even_when_times_moved():
    agreement = LocalAgreement(committed_time=2.0, committed_tail=["thy", "sweet", "self"])
    # Re-decoded confirmed words end 0.6 s before the confirmed time; a time filter alone would keep or drop
    # the wrong ones.
    agreement.insert(words(("thy", 0.6), ("sweet", 1.0), ("self", 1.1), ("too", 1.5), ("cruel", 1.9)))
    assert join_words(agreement.tentative) == ""
    assert join_words(agreement._new) == "too cruel"


def test_without_anchor_words_before_the_confirmed_time_are_dropped():
    agreement = LocalAgreement(committed_time=1.0, committed_tail=["zebra"])
    agreement.insert(words(("old", 0.2), ("new", 1.0)))
    agreement.flush()
    assert join_words(agreement.tentative) == "new"


def test_complete_confirms_everything_or_up_to_a_time():
    agreement = LocalAgreement()
    agreement.insert(words(("a", 0.0), ("b", 0.4), ("c", 0.8)))
    agreement.flush()
    assert join_words(agreement.complete(upto=0.75)) == "a b"
    assert join_words(agreement.tentative) == "c"
    assert join_words(agreement.complete()) == "c"
    assert agreement.tentative == []


def test_the_whole_word_of_a_confirmed_word_cut_short_is_not_confirmed_again():
    # Given "fellow America" confirmed up to 2.06 s (the word was cut short: "Americans")
    agreement = LocalAgreement(2.06, [" fellow", " America."])
    # When a later decode hears the whole word, with times a little off, then the next words
    agreement.insert([Word(1.4, 1.76, " fellow", 0.9), Word(1.8, 2.4, " Americans,", 0.9), Word(2.7, 3.0, " ask", 0.9)])
    # Then the next phrase starts after it: no "America. | Americans" at the boundary
    assert join_words(agreement.pending) == "ask"
    # And a new word that merely starts like the last one, after it, is kept
    later = LocalAgreement(2.06, [" fellow", " America."])
    later.insert([Word(2.2, 2.6, " American", 0.9)])
    assert join_words(later.pending) == "American"


def test_the_last_confirmed_word_re_decoded_into_the_pause_after_it_is_not_confirmed_again():
    # Given "HTML goo." confirmed up to 23.9 s (as a real AMI excerpt gave)
    agreement = LocalAgreement(23.9, [" HTML", " goo."])
    # When a decode with only the last word of them puts it later and longer (it reaches into the pause), then more
    agreement.insert([Word(23.2, 24.7, " goo.", 0.6), Word(26.9, 27.1, " I", 0.9), Word(27.1, 27.3, " think", 0.9)])
    # Then the next phrase starts with the new words: no "goo. | goo." at the boundary
    assert join_words(agreement.pending) == "I think"
    # And the same word said again after it is kept ("Okay. Okay.")
    again = LocalAgreement(23.9, [" HTML", " goo."])
    again.insert([Word(24.3, 24.6, " goo.", 0.9)])
    assert join_words(again.pending) == "goo."


def test_a_new_word_aligned_back_over_confirmed_words_starts_after_them():
    # Given "actually just" confirmed up to 16.38 s
    agreement = LocalAgreement()
    for _ in range(2):
        agreement.insert([Word(15.32, 16.14, " Actually"), Word(16.14, 16.38, " just")])
        agreement.flush()
    # When a re-decode hears the same audio as another word whose alignment stretches back over it (as Whisper
    # gave "That's" from 15.32 to 17.92 s on an AMI meeting)
    agreement.insert([Word(15.32, 17.92, " That's"), Word(18.08, 18.3, " it.")])
    # Then the new word starts where the confirmed ones end, so its phrase cannot start before theirs
    assert [(w.start, w.end) for w in agreement.pending] == [(16.38, 17.92), (18.08, 18.3)]
