import DEEStore
import Logging
import Testing

@testable import DEEService

/// Run retention's decisions without Redis: which script comes next, when a round ends, how a setting is written.
@Suite struct RunRetentionRoundTests {
    static func batch(removed: Int, more: Bool) -> RetentionBatch {
        RetentionBatch(removed: removed, examined: removed, more: more, nextDue: nil, now: 0, skipped: [])
    }

    static func step(done: Bool) -> BackfillStep { BackfillStep(done: done, read: 10, queued: 0, skipped: []) }

    @Test func aPartitionNotKnownBackfilledWalksTheBackfillFirstThenRemovesInTheSameRound() {
        var round = RunRetentionRound(backfilled: false, batchesPerRound: 10)
        #expect(round.first == .backfill)
        #expect(round.afterBackfill(Self.step(done: false)) == .backfill)
        #expect(round.afterBackfill(Self.step(done: true)) == .remove)
        #expect(round.backfilled)
        #expect(round.afterRemove(Self.batch(removed: 5, more: false)) == .rest)
        #expect(round.removed == 5 && round.batches == 3)
    }

    @Test func aFullBatchIsFollowedByAnotherUpToTheRoundsCap() {
        var round = RunRetentionRound(backfilled: true, batchesPerRound: 3)
        #expect(round.first == .remove)
        #expect(round.afterRemove(Self.batch(removed: 500, more: true)) == .remove)
        #expect(round.afterRemove(Self.batch(removed: 500, more: true)) == .remove)
        // The third call is the last of the round, however much is left.
        #expect(round.afterRemove(Self.batch(removed: 500, more: true)) == .rest)
        #expect(round.removed == 1500)
    }

    @Test func aBatchThatStoppedShortEndsTheRound() {
        var round = RunRetentionRound(backfilled: true, batchesPerRound: 20)
        // Its budget not used up: the list's head is not due yet, or nothing is left.
        #expect(round.afterRemove(Self.batch(removed: 0, more: false)) == .rest)
        #expect(round.afterRemove(Self.batch(removed: 42, more: false)) == .rest)
    }

    @Test func theBackfillAlsoCountsAgainstTheCap() {
        var round = RunRetentionRound(backfilled: false, batchesPerRound: 2)
        #expect(round.afterBackfill(Self.step(done: false)) == .backfill)
        #expect(round.afterBackfill(Self.step(done: false)) == .rest)
        #expect(!round.backfilled)
        // A cap below one is one.
        var one = RunRetentionRound(backfilled: true, batchesPerRound: 0)
        #expect(one.afterRemove(Self.batch(removed: 1, more: true)) == .rest)
    }

    @Test(arguments: [
        (RetentionRefusal.backfillPending, RunRetentionRound.Action.backfill), (.fenced, .rest),
        (.wrongType("due"), .rest),
    ])
    func refusals(refusal: RetentionRefusal, next: RunRetentionRound.Action) {
        var round = RunRetentionRound(backfilled: true, batchesPerRound: 5)
        #expect(round.refused(refusal) == next)
        #expect(round.backfilled == (refusal != .backfillPending))
        #expect(round.batches == 1)
    }

    @Test(arguments: [
        (86_400_000 * 30, "30d"), (3_600_000 * 12, "12h"), (90 * 60_000, "90m"), (45_000, "45s"), (1_500, "1500ms"),
        (86_400_000 + 1_000, "86401s"), (1_000, "1s"), (3650 * 86_400_000, "3650d"),
    ])
    func settingsAreWrittenInTheirLargestExactUnit(ms: Int, text: String) {
        #expect(RunRetentionSetting.describe(milliseconds: ms) == text)
    }

    @Test func theSettingsBounds() {
        #expect(RunRetentionSetting.milliseconds.lowerBound == 1_000)
        #expect(RunRetentionSetting.milliseconds.upperBound == 315_360_000_000)
    }

    @Test func skippedRunsAreSummedUpInOneLine() throws {
        #expect(RunRetentionSetting.skipSummary([]) == nil)
        let skips = (0..<7).map {
            RetentionSkip(runId: "r\($0)", reason: $0 < 3 ? .completedAt : .wrongTypeKey("idx:contact:x"))
        }
        let line = try #require(RunRetentionSetting.skipSummary(skips))
        #expect(line.message.contains("skipped 7 run(s)"))
        #expect(line.message.contains("completedAt not a number 3, idx:contact:x of another type 4"), "\(line.message)")
        #expect(line.metadata["run.ids"] == "r0,r1,r2,r3,r4")
    }

    @Test(arguments: [
        ("gone", RetentionSkip.Reason.gone), ("wrongtype", .wrongType), ("open", .open), ("completedAt", .completedAt),
        ("corrupt", .corrupt), ("wrongtype:idx:ps:a:completed", .wrongTypeKey("idx:ps:a:completed")),
        ("new", .other("new")),
    ])
    func reasonsAsTheScriptsNameThem(text: String, reason: RetentionSkip.Reason) {
        #expect(RetentionSkip.Reason(text) == reason)
    }
}
