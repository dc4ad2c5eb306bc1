import DEETestSupport
import Foundation
import Redis
import Testing

/// `dee-bench` (scripts/bench's driver) at toy sizes against a real engine: every workload runs and prints its row,
/// so the tool the performance figures come from does not rot between the sessions that measure with it. No figure
/// is checked: timing goals live in scripts/bench, never in a test.
@Suite(.offPool) struct BenchSmokeTests {
    @Test func everyWorkloadPrintsItsRow() throws {
        let d = try Deployment()
        let r = try CLI.run(
            d.options + [
                "--executes", "200", "--producers", "2", "--window", "20", "--bulk", "300", "--tick-runs", "700",
                "--queries", "3",
            ], limit: 240, program: "dee-bench")
        #expect(r.status == 0, "\(r.stderr)\n\(r.stdout)")
        for row in [
            "`execute` with `requestId`", "with/without = ", "mixed: ", "raw baseline: ", "engine/raw = ",
            "`bulkExecute` of 300 contacts", "a tick stepping", "raw baseline for `bulkExecute`",
            "raw baseline for the tick", "`listRuns` by status", "Redis memory",
        ] {
            #expect(r.stdout.contains(row), "no row \(row) in:\n\(r.stdout)")
        }
        // The raw baselines leave nothing of theirs behind.
        #expect(try d.redis.call(["KEYS", "\(d.prefix)raw:*"]).array?.isEmpty == true)
    }
}
