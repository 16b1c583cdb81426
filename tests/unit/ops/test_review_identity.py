"""Who may review (docs/foreign-currency.md §5): a member of screening.review_group, by
the admin socket's user; ``--as`` only with environment = "test"; nobody while the group
is unset.  The tests run as root, whose primary group is root."""

from __future__ import annotations

import os
import pwd

import pytest

from gateway.ops.admin import Peer
from gateway.ops.review import Refused, Reviewer, is_member, reviewer

as_root = pytest.mark.skipif(os.geteuid() != 0, reason="the tests name root's group")


@as_root
def test_a_member_reviews_under_the_socket_user_and_as_stands_in_only_in_test() -> None:
    me = Peer.of_uid(0)
    assert reviewer({}, me, "root", "production") == Reviewer(0, "root")
    assert reviewer({"as": "alice"}, me, "root", "test") == Reviewer(0, "alice")
    for env in ("production", "demo"):
        with pytest.raises(Refused, match='only with environment = "test"'):
            reviewer({"as": "alice"}, me, "root", env)


@as_root
def test_outsiders_and_an_unset_group_are_refused() -> None:
    me = Peer.of_uid(0)
    for unset in (None, ""):
        with pytest.raises(Refused, match="review_group is not set"):
            reviewer({}, me, unset, "test")
    nobody = pwd.getpwnam("nobody")
    outsider = Peer(nobody.pw_uid, "nobody")
    assert not is_member(nobody.pw_uid, "root")
    with pytest.raises(Refused, match="nobody is not a member of the review group root"):
        reviewer({}, outsider, "root", "test")
    with pytest.raises(Refused, match="not a member"):  # --as does not lend membership
        reviewer({"as": "root"}, outsider, "root", "test")
    assert not is_member(0, "no-such-group-here")
