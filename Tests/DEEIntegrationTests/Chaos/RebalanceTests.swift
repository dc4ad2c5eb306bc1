import DEEClient
import DEETestSupport
import Foundation
import Redis
import Testing

/// Rebalancing (issue 11, Sources/DEEService/Partition/PartitionShare.swift) with real `dee serve` processes: they
/// share the partitions evenly as they join and leave, a SIGTERM hands partitions over at once, a kill -9 after a
/// lease; and under load nothing is lost or doubled (the chaos harness's fault-free comparison).
@Suite(.serialized) struct RebalanceTests {
    /// Partition → the consumer name of the process holding its lease.
    static func holders(_ redis: RedisConnection, prefix: String, partitions: Int) -> [String] {
        (0..<partitions).map { p in
            let holder = (try? redis.call(["GET", "\(prefix):{\(p)}:lease"]).string) ?? nil
            return holder.map { String($0.split(separator: "/").first ?? "") } ?? "-"
        }
    }

    /// How many partitions each consumer holds, as sorted counts (free partitions count as "-").
    static func shares(_ redis: RedisConnection, prefix: String, partitions: Int) -> [String: Int] {
        Dictionary(holders(redis, prefix: prefix, partitions: partitions).map { ($0, 1) }, uniquingKeysWith: +)
    }

    @Test(.timeLimit(.minutes(4))) func processesShareThePartitionsAsTheyJoinAndLeave() async throws {
        try await offPool {
            let executable = try #require(CrashTests.deeExecutable(), "build dee first: swift build --product dee")
            let url = try TestRedis.url()
            let prefix = TestRedis.uniquePrefix()
            let redis = RedisConnection(configuration: try RedisConfiguration(url: url))
            defer { _ = try? redis.unlinkKeys(matching: "\(prefix):*") }
            let logs = FileManager.default.temporaryDirectory.appendingPathComponent("dee-rebalance-\(prefix)")
            try FileManager.default.createDirectory(at: logs, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(at: logs) }
            let partitions = 4
            func engine(_ name: String) throws -> EngineProcess {
                try EngineProcess(
                    executable: executable, url: url, prefix: prefix, consumer: name,
                    extra: ["--partitions", String(partitions)], log: logs.appendingPathComponent("\(name).log"))
            }
            func shares() -> [String: Int] { Self.shares(redis, prefix: prefix, partitions: partitions) }
            func logsText(_ engines: [EngineProcess]) -> String { engines.map(\.output).joined(separator: "\n---\n") }

            let a = try engine("rb-a")
            defer { a.killHard() }
            #expect(eventually(timeout: 20) { shares() == ["rb-a": 4] }, "\(shares())\n\(a.output)")
            // A second process takes its half within seconds.
            let b = try engine("rb-b")
            defer { b.killHard() }
            #expect(
                eventually(timeout: 20) { shares() == ["rb-a": 2, "rb-b": 2] }, "\(shares())\n\(logsText([a, b]))")
            // A third: 2, 1, 1.
            let c = try engine("rb-c")
            defer { c.killHard() }
            #expect(
                eventually(timeout: 20) { shares().values.sorted() == [1, 1, 2] && shares()["-"] == nil },
                "\(shares())\n\(logsText([a, b, c]))")
            // SIGTERM: it leaves the membership, then hands its partitions over; the others take them at once
            // (well within a lease).
            let stopped = c.stop(grace: 20)
            #expect(stopped?.status == 0, "\(String(describing: stopped))")
            #expect(
                eventually(timeout: 8) { shares() == ["rb-a": 2, "rb-b": 2] }, "\(shares())\n\(logsText([a, b, c]))")
            // kill -9: its membership and leases run out (2 s here), then the survivor takes everything.
            b.killHard()
            #expect(eventually(timeout: 20) { shares() == ["rb-a": 4] }, "\(shares())\n\(logsText([a, b]))")
            // Commands are answered throughout; one more after all that.
            let client = DEEClient(redis: RedisConnection(configuration: try RedisConfiguration(url: url)), prefix: prefix)
            try client.register(simplePlan("rb"))
            for i in 0..<8 { try client.run("rb", "rb\(i)") }
            #expect(try client.call("listRuns", ["planId": "rb"]).total == 8)
        }
    }

    /// Three processes on four partitions, stopped, killed and started again under load: every restart moves
    /// partitions between live processes (the restarted one takes its share back), and the outcome is the
    /// fault-free run's.
    @Test(.timeLimit(.minutes(6))) func rebalancingUnderLoadLosesAndDoublesNothing() async throws {
        try await offPool {
            let executable = try #require(CrashTests.deeExecutable(), "build dee first: swift build --product dee")
            let harness = ChaosHarness(executable: executable, url: try TestRedis.url(), partitions: 4, seed: 21)
            let row = try harness.run("three engines on 4 partitions, rebalancing under SIGTERM and kill -9", engines: 3) {
                faults, wave in
                faults.randomMoment(300)
                if wave % 2 == 0 { faults.stopRandomEngine() } else { faults.killRandomEngine() }
            }
            ChaosTests.expectClean(row)
        }
    }
}
