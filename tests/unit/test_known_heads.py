"""The chain heads a process guesses, learnt from its commits, refusals and the log it follows."""

from __future__ import annotations

from infrastructure.audit.known_heads import UNKNOWN, KnownHeads


def test_a_followed_head_replaces_only_an_older_one() -> None:
    # Given the heads this process's commit wrote at position 10
    heads = KnownHeads()
    heads.learn("g10", {"s": "s10"}, 10)

    # When the log is followed up to position 7 (read before that commit's notification)
    heads.follow(7, "g7", {"s": (7, "s7"), "t": (6, "t6")})

    # Then the heads of the commit stay, and a session it did not know is learnt
    assert (heads.global_head, heads.session("s"), heads.session("t")) == ("g10", "s10", "t6")

    # When the log is followed past the commit (another process appended since)
    heads.follow(12, "g12", {"s": (12, "s12")})

    # Then those later heads are expected
    assert (heads.global_head, heads.session("s")) == ("g12", "s12")


def test_heads_learnt_from_a_refusal_stay_until_this_process_writes() -> None:
    # Given heads a refused append returned (current under the table lock)
    heads = KnownHeads()
    heads.learn("g?", {"s": "s?"})

    # When the log is followed (the follower may still be behind them)
    heads.follow(3, "g3", {"s": (3, "s3")})

    # Then the refused append's heads are still expected, until a commit writes others
    assert (heads.global_head, heads.session("s")) == ("g?", "s?")
    heads.learn("g9", {"s": "s9"}, 9)
    heads.follow(11, "g11", {"s": (11, "s11")})
    assert (heads.global_head, heads.session("s")) == ("g11", "s11")


def test_forgetting_the_global_head_leaves_it_unknown_until_followed() -> None:
    heads = KnownHeads()
    heads.learn("g1", {}, 1)
    heads.forget()
    assert heads.global_head is UNKNOWN
    heads.follow(1, "g1", {})
    assert heads.global_head == "g1"
