import DEEStore
import Logging

/// Run retention's decisions for one partition in one round, apart from Redis: which script to call next
/// (a backfill step, a removal batch) or to rest until the next round. ``RunRetention`` only performs them.
///
/// - A partition whose one-time backfill is not known to be finished walks it first; once a step says done,
///   removals start in the same round.
/// - A removal batch that used its whole budget may have left runs due: another batch follows at once. One that
///   did not (the finished list's head is not due yet, or nothing is left) ends the partition's round.
/// - At most `batchesPerRound` script calls per partition per round, so one partition with a large backlog
///   neither starves the others nor keeps Redis busy back to back for long.
/// - Refused: `BACKFILL` (another process reset it, or the cache was wrong) goes back to the backfill; `FENCED`
///   (the partition has another owner) and a partition-wide key of another type end the round.
public struct RunRetentionRound: Sendable, Equatable {
    /// What to do next.
    public enum Action: Sendable, Equatable {
        case backfill
        case remove
        case rest
    }

    public let batchesPerRound: Int
    /// Script calls made this round.
    public private(set) var batches = 0
    /// Whether the partition's backfill is finished, as far as this round knows.
    public private(set) var backfilled: Bool
    /// Runs removed this round.
    public private(set) var removed = 0

    public init(backfilled: Bool, batchesPerRound: Int) {
        self.backfilled = backfilled
        self.batchesPerRound = max(1, batchesPerRound)
    }

    /// The round's first call.
    public var first: Action { backfilled ? .remove : .backfill }

    private mutating func counted(_ next: Action) -> Action {
        batches += 1
        return batches < batchesPerRound ? next : .rest
    }

    /// After a backfill step: the next step, or removals once the walk is done.
    public mutating func afterBackfill(_ step: BackfillStep) -> Action {
        if step.done { backfilled = true }
        return counted(step.done ? .remove : .backfill)
    }

    /// After a removal batch: another one only if this one ran out of budget.
    public mutating func afterRemove(_ batch: RetentionBatch) -> Action {
        removed += batch.removed
        return counted(batch.more ? .remove : .rest)
    }

    /// After a refused call.
    public mutating func refused(_ refusal: RetentionRefusal) -> Action {
        switch refusal {
        case .backfillPending:
            backfilled = false
            return counted(.backfill)
        case .fenced, .wrongType:
            batches += 1
            return .rest
        }
    }
}

/// The retention setting: its bounds and how it is written.
public enum RunRetentionSetting {
    /// `dee serve --run-retention` takes 1 s to 3650 d.
    public static let milliseconds: ClosedRange<Int> = 1_000...(3650 * 86_400_000)

    /// `30d`, `12h`, `90m`, `45s`, `1500ms`: the largest unit that divides it exactly.
    public static func describe(milliseconds ms: Int) -> String {
        for (unit, size) in [("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1_000)]
        where ms >= size && ms % size == 0 {
            return "\(ms / size)\(unit)"
        }
        return "\(ms)ms"
    }

    /// One log line for the runs a batch passed over: how many for each reason, and the first few ids (so an
    /// operator can look), or nil when none was skipped.
    public static func skipSummary(
        _ skips: [RetentionSkip], shown: Int = 5
    ) -> (message: String, metadata: Logger.Metadata)? {
        guard !skips.isEmpty else { return nil }
        var counts: [String: Int] = [:]
        for s in skips { counts[reasonName(s.reason), default: 0] += 1 }
        let reasons = counts.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
        let ids = skips.prefix(shown).map(\.runId).joined(separator: ",")
        return (
            "run retention skipped \(skips.count) run(s) it cannot remove (\(reasons)); left as they are",
            ["skipped": "\(skips.count)", "reasons": "\(reasons)", "run.ids": "\(ids)"]
        )
    }

    static func reasonName(_ r: RetentionSkip.Reason) -> String {
        switch r {
        case .gone: return "run hash gone"
        case .wrongType: return "run key of another type"
        case .open: return "not terminal"
        case .completedAt: return "completedAt not a number"
        case .corrupt: return "planId or contactId missing"
        case .wrongTypeKey(let suffix): return "\(suffix) of another type"
        case .other(let text): return text
        }
    }
}
