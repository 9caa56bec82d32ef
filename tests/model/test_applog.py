"""AppLog: the last lines kept by count and bytes; each follower's queue bounded alone."""

from __future__ import annotations

from wakeproxy.model.applog import ASLEEP, AppLog, Follower


async def test_keeps_the_newest_lines_by_count_and_by_bytes():
    log = AppLog(lines=3, size=1000)
    log.started("app started")
    log.extend([f"l{i}" for i in range(5)])
    assert log.recent(10) == ["l2", "l3", "l4"]
    log = AppLog(lines=100, size=12)  # each line costs its length plus a newline
    log.extend(["aaaa", "bbbb", "cccc"])
    assert log.recent(10) == ["bbbb", "cccc"]


async def test_a_follower_of_a_sleeping_app_is_told_so_then_gets_new_lines():
    log = AppLog()
    follower = log.follow(10)
    assert await follower.next() == [ASLEEP]
    log.started("app started (pid 1, port 2)")
    log.extend(["hello"])
    assert await follower.next() == ["==> app started (pid 1, port 2)", "hello"]
    log.asleep()
    assert await follower.next() == [ASLEEP]
    assert await follower.next(within=0.01) == []  # nothing new: an empty batch, not an end
    follower.close()
    assert log.followers == 0
    assert await follower.next() is None


async def test_a_full_queue_drops_for_that_reader_alone_and_says_how_many():
    log = AppLog()
    log.started("up")
    slow, fast = Follower(lines=3), log.follow(0)
    log._followers.add(slow)  # a reader with a small queue, beside one with the default
    log.extend([f"l{i}" for i in range(5)])
    assert await fast.next() == [f"l{i}" for i in range(5)]
    assert await slow.next() == ["l0", "l1", "l2",
                                 "==> 2 lines dropped: this reader fell behind "
                                 "(at most 3 lines wait for one reader)"]
    log.extend(["l5"])
    assert await slow.next() == ["l5"]
    assert await fast.next() == ["l5"]
    assert slow.total_dropped == 2 and fast.total_dropped == 0


async def test_a_deleted_app_ends_its_streams_after_saying_so():
    log = AppLog()
    follower = log.follow(0, follow=True)
    log.end("app deleted")
    assert await follower.next() == [ASLEEP, "==> app deleted"]
    assert await follower.next() is None


async def test_blocks_of_lines_are_cut_between_lines_to_keep_the_newest():
    log = AppLog(lines=5, size=1000)
    log.write("a\nb\nc\n", 3)
    log.write("d\ne\nf\ng\n", 4)  # the bound falls inside the first block
    assert log.recent(10) == ["c", "d", "e", "f", "g"]
    assert log.recent(2) == ["f", "g"]
    log = AppLog(lines=100, size=10)  # each line costs its length plus a newline
    log.write("aaa\nbbb\n", 2)
    log.write("ccc\n", 1)
    assert log.recent(10) == ["bbb", "ccc"]
    log.write("dddddddd\n", 1)  # 9 bytes: only it fits
    assert log.recent(10) == ["dddddddd"]


async def test_a_reader_gets_a_block_as_lines_or_as_one_text():
    log = AppLog()
    log.started("up")
    follower = log.follow(0)
    log.write("one\ntwo\n", 2)
    log.extend(["three"])
    assert await follower.next_text() == "one\ntwo\nthree\n"
    log.write("four\n", 1)
    assert await follower.next() == ["four"]
    assert await follower.next_text(within=0.01) == ""
