@testable import DEEClient
import Testing

/// The demultiplexer's decisions, without Redis.
@Suite struct ReplyWaitersTests {
    let now = ContinuousClock.now

    @Test func oneReaderAtATime() throws {
        var w = ReplyWaiters()
        let a = try add(&w, "a", now + .seconds(10))
        let b = try add(&w, "b", now + .seconds(10))
        let first = w.step(a), second = w.step(b)
        #expect(first == .read(after: "0-0"))
        #expect(second == .park)
    }

    @Test func aReplyGoesToItsRequestIdOnlyAndTheLastIdMoves() throws {
        var w = ReplyWaiters()
        let a = try add(&w, "a", now + .seconds(10))
        let b = try add(&w, "b", now + .seconds(10))
        _ = w.step(a)
        let entries = [(id: "5-0", fields: ["requestId": "b", "ok": "true"]), (id: "6-0", fields: ["requestId": "x"])]
        _ = w.finishRead(entries, lastId: "6-0", now: now)
        #expect(w.reply(a) == nil)
        #expect(w.reply(b)?["ok"] == "true")
        #expect(w.lastId == "6-0")
        let next = w.step(a)
        #expect(next == .read(after: "6-0"))
    }

    @Test func finishingARoundHandsTheRoleToASleeper() async throws {
        var w = ReplyWaiters()
        let a = try add(&w, "a", now + .seconds(10))
        let b = try add(&w, "b", now + .seconds(10))
        _ = w.step(a)
        let parkB = w.step(b)
        #expect(parkB == .park)
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            let parked = w.park(b, c)
            #expect(parked)
            // a's reply comes: a returns, and b must wake to read the next round.
            let wake = w.finishRead([("1-0", ["requestId": "a"])], lastId: "1-0", now: now)
            #expect(wake.count == 1)
            for c in wake { c.resume() }
        }
        let bReads = w.step(b)
        #expect(bReads == .read(after: "1-0"))
    }

    @Test func aSleeperPastItsWakeTimeIsWoken() async throws {
        var w = ReplyWaiters()
        let a = try add(&w, "a", now + .seconds(10))
        let b = try add(&w, "b", now)
        let c = try add(&w, "c", now + .seconds(10))
        _ = w.step(a)
        await withCheckedContinuation { (cb: CheckedContinuation<Void, Never>) in
            let parked = w.park(b, cb)
            #expect(parked)
            let wake = w.finishRead([], lastId: nil, now: now)
            // b (its wake time passed) and, being the only sleeper, also the one handed the role.
            #expect(wake.count == 1)
            for k in wake { k.resume() }
        }
        #expect(w.reply(c) == nil)
    }

    @Test func parkingIsRefusedWhenTheRoleIsFreeOrTheReplyIsHere() async throws {
        var w = ReplyWaiters()
        let a = try add(&w, "a", now + .seconds(10))
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            let parked = w.park(a, c)
            #expect(!parked)  // nobody reads: a must read itself
            c.resume()
        }
    }

    @Test func closeStopsEveryone() async throws {
        var w = ReplyWaiters()
        let a = try add(&w, "a", now + .seconds(10))
        let b = try add(&w, "b", now + .seconds(10))
        _ = w.step(a)
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            let parked = w.park(b, c)
            #expect(parked)
            let wake = w.close()
            #expect(wake.count == 1)
            for k in wake { k.resume() }
        }
        let stopped = w.step(b)
        #expect(stopped == .stop)
        let late = w.register(requestId: "c", wakeAt: now)
        #expect(late == nil)
    }

    @Test func aCancelledSleeperIsReturnedAndStops() async throws {
        var w = ReplyWaiters()
        let a = try add(&w, "a", now + .seconds(10))
        let b = try add(&w, "b", now + .seconds(10))
        _ = w.step(a)
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            let parked = w.park(b, c)
            #expect(parked)
            w.cancel(b)?.resume()
        }
        let stopped = w.step(b)
        #expect(stopped == .stop)
    }

    @Test func twoCallersWithOneRequestIdBothGetTheReply() throws {
        var w = ReplyWaiters()
        let a = try add(&w, "same", now + .seconds(10))
        let b = try add(&w, "same", now + .seconds(10))
        _ = w.step(a)
        _ = w.finishRead([("1-0", ["requestId": "same"])], lastId: "1-0", now: now)
        #expect(w.reply(a) != nil && w.reply(b) != nil)
        w.unregister(a)
        w.unregister(b)
        #expect(w.waiters.isEmpty)
    }
}

/// Registers a waiter, failing the test when the state refuses.
private func add(_ w: inout ReplyWaiters, _ requestId: String, _ wakeAt: ContinuousClock.Instant) throws -> Int {
    try #require(w.register(requestId: requestId, wakeAt: wakeAt) as Int?)
}
