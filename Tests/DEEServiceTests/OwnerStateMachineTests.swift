import DEEStore
import Testing

@testable import DEEService

/// A partition owner's decisions (SPEC 9), without Redis: lease, where to read, when the watermark moves, and when
/// entries go one at a time.
@Suite struct OwnerStateMachineTests {
    @Test func aStandbyOnlyTriesToTakeTheLease() {
        #expect(OwnerStateMachine().next() == .takeLease)
    }

    @Test func takingThePartitionReadsAfterTheRepliedWatermarkOneByOne() {
        var m = OwnerStateMachine()
        m.took(epoch: "4", replied: "10-0")
        #expect(m.epoch == "4")
        #expect(m.next() == .singly(after: "10-0"), "the predecessor may have died on the next entry")
        m.singlyDone()
        #expect(m.next() == .batch(after: "10-0"))
        var fresh = OwnerStateMachine()
        fresh.took(epoch: "1", replied: nil)
        #expect(fresh.next() == .singly(after: "0-0"))
    }

    @Test func theWatermarkMovesOnlyWhenRepliesAreWritten() {
        var m = OwnerStateMachine()
        m.took(epoch: "1", replied: "5-0")
        m.singlyDone()
        // A batch was applied but its replies were not written (the connection dropped): nothing moves, so the
        // next round reads the same entries again and replies their stored results.
        m.failed(.transient)
        #expect(m.next() == .batch(after: "5-0"))
        m.replied(through: "9-0")
        #expect(m.next() == .batch(after: "9-0"))
    }

    @Test func anEntrysFailureSendsTheNextBatchOneByOne() {
        var m = OwnerStateMachine()
        m.took(epoch: "1", replied: nil)
        m.singlyDone()
        m.failed(.entry)
        #expect(m.next() == .singly(after: "0-0"))
        m.failed(.transient)
        #expect(m.next() == .singly(after: "0-0"), "a transient failure keeps going one by one")
    }

    @Test func aLostLeaseStandsByAndTakingItAgainStartsOver() {
        var m = OwnerStateMachine()
        m.took(epoch: "1", replied: "3-0")
        m.singlyDone()
        m.replied(through: "7-0")
        m.lost()
        #expect(m.next() == .takeLease)
        m.took(epoch: "2", replied: "6-0")
        #expect(m.next() == .singly(after: "6-0"), "what Redis says, not what this process remembered")
    }
}

/// The inbox entry is one type for the router, which writes it, and the owner, which reads it.
@Suite struct InboxEntryTests {
    @Test func itRoundTripsThroughItsFields() {
        let full = InboxEntry(
            type: "bulkExecute", requestId: "r1", fingerprint: "fp", replyTo: "ops:replies", actor: "alice",
            args: #"{"contacts":[]}"#, parts: 3, targets: [0, 2, 5], planVersion: 4, failure: #"{"code":"x"}"#,
            indexes: "[1,7]")
        let minimal = InboxEntry(type: "tick", requestId: nil, fingerprint: "", replyTo: nil, actor: nil, args: "{}")
        for entry in [full, minimal] {
            var fields: [String: String] = [:]
            var i = 0
            while i + 1 < entry.fields.count {
                fields[entry.fields[i]] = entry.fields[i + 1]
                i += 2
            }
            #expect(InboxEntry(fields: fields) == entry)
        }
    }

    @Test func fieldsAtTheirDefaultAreLeftOutAndReadTheSameAsTheEarlierEmptyOnes() {
        let minimal = InboxEntry(type: "tick", requestId: nil, fingerprint: "", replyTo: nil, actor: nil, args: "{}")
        #expect(minimal.fields == ["type", "tick", "fp", "", "args", "{}"])
        // What versions before this one wrote for the same entry, an inbox an upgraded owner may still hold.
        let earlier = ["type": "tick", "rid": "", "fp": "", "replyTo": "", "actor": "", "args": "{}", "parts": "1"]
        #expect(InboxEntry(fields: earlier) == minimal)
    }

    @Test func anEntryWithoutATypeIsNotAnInboxEntry() {
        #expect(InboxEntry(fields: ["args": "{}"]) == nil)
        #expect(InboxEntry(fields: ["type": ""]) == nil)
    }
}

/// After a failure the owner's memory may be behind Redis (an apply went through, its answer was lost): it reads
/// the applied watermark and the clock again before applying anything more.
@Suite struct OwnerStaleStateTests {
    @Test(arguments: [Failure.transient, Failure.entry])
    func aFailureMakesTheOwnerReadItsStateAgain(_ failure: Failure) {
        var m = OwnerStateMachine()
        m.took(epoch: "1", replied: nil)
        #expect(!m.stale, "taking the partition reads it")
        m.failed(failure)
        #expect(m.stale)
        m.reloaded()
        #expect(!m.stale)
    }
}
