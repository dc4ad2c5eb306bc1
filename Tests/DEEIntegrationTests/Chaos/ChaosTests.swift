import DEEClient
import DEETestSupport
import Foundation
import Redis
import Testing

/// SPEC 9's guarantees, each tried by a fault against real `dee serve` processes and compared with a fault-free run
/// over the same ingress log (see ``ChaosHarness``). Sizes come from DEE_CHAOS_COMMANDS (default 1,200 commands per
/// scenario; `scripts/chaos` runs them larger and writes the table to docs/RELIABILITY.md).
@Suite(.serialized) struct ChaosTests {
    static func harness(url: String? = nil, seed: UInt64) throws -> ChaosHarness {
        let executable = try #require(
            CrashTests.deeExecutable(), "the dee executable was not found; build it with `swift build --product dee`")
        return ChaosHarness(executable: executable, url: try url ?? TestRedis.url(), seed: seed)
    }

    static func expectClean(_ row: ChaosHarness.Row) {
        #expect(row.lost == 0, "\(row)\n\(row.notes.joined(separator: "\n"))")
        #expect(row.duplicates == 0, "\(row)\n\(row.notes.joined(separator: "\n"))")
        #expect(row.answered == row.sent, "\(row)\n\(row.notes.joined(separator: "\n"))")
        #expect(row.applied == row.sent, "\(row)\n\(row.notes.joined(separator: "\n"))")
        #expect(row.notes.isEmpty, "\(row)\n\(row.notes.joined(separator: "\n"))")
    }

    @Test(.timeLimit(.minutes(6))) func noFaultTwoEngines() async throws {
        try await offPool {
            Self.expectClean(try Self.harness(seed: 11).run("two engines, no fault", engines: 2) { _, _ in })
        }
    }

    @Test(.timeLimit(.minutes(6))) func twoEnginesOneKilledMidLoad() async throws {
        try await offPool {
            let row = try Self.harness(seed: 12).run("two engines, kill -9 one mid-load", engines: 2) { faults, wave in
                if wave == 2 {
                    faults.randomMoment(300)
                    faults.killRandomEngine()
                }
            }
            Self.expectClean(row)
        }
    }

    @Test(.timeLimit(.minutes(6))) func oneEngineKilledAtRandomMoments() async throws {
        try await offPool {
            let row = try Self.harness(seed: 13).run("one engine, kill -9 at random moments", engines: 1) { faults, wave in
                if wave % 2 == 0 {
                    faults.randomMoment(400)
                    faults.killRandomEngine()
                }
            }
            Self.expectClean(row)
        }
    }

    @Test(.timeLimit(.minutes(6))) func twoEnginesKilledAtRandomMoments() async throws {
        try await offPool {
            let row = try Self.harness(seed: 14).run("two engines, kill -9 at random moments", engines: 2) { faults, _ in
                faults.randomMoment(400)
                faults.killRandomEngine()
            }
            Self.expectClean(row)
        }
    }

    @Test(.timeLimit(.minutes(6))) func sigtermUnderLoad() async throws {
        try await offPool {
            let row = try Self.harness(seed: 15).run("two engines, SIGTERM under load", engines: 2) { faults, wave in
                if wave % 3 == 1 {
                    faults.randomMoment(200)
                    faults.stopRandomEngine()
                }
            }
            Self.expectClean(row)
        }
    }

    @Test(.timeLimit(.minutes(6))) func redisRestartedGracefully() async throws {
        try await offPool {
            let redis = try DedicatedRedis(arguments: ["--appendonly", "yes", "--appendfsync", "everysec"])
            let row = try Self.harness(url: redis.url, seed: 16).run(
                "Redis SHUTDOWN and restart under load (AOF)", engines: 2, redis: redis
            ) { faults, wave in
                if wave == 2 || wave == 5 {
                    faults.randomMoment(200)
                    faults.restartRedis(graceful: true)
                }
            }
            Self.expectClean(row)
        }
    }

    @Test(.timeLimit(.minutes(6))) func redisKilledWithAppendfsyncAlways() async throws {
        try await offPool {
            let redis = try DedicatedRedis(arguments: ["--appendonly", "yes", "--appendfsync", "always"])
            let row = try Self.harness(url: redis.url, seed: 17).run(
                "Redis kill -9 and restart under load (appendfsync always)", engines: 2, redis: redis
            ) { faults, wave in
                if wave == 3 {
                    faults.randomMoment(200)
                    faults.restartRedis(graceful: false)
                }
            }
            Self.expectClean(row)
        }
    }

    @Test(.timeLimit(.minutes(6))) func connectionsCutUnderLoad() async throws {
        try await offPool {
            let redis = try DedicatedRedis(arguments: [])
            let row = try Self.harness(url: redis.url, seed: 18).run(
                "two engines, every connection cut under load", engines: 2, redis: redis
            ) { faults, _ in
                faults.cutConnections(times: 3)
            }
            Self.expectClean(row)
        }
    }

    @Test(.timeLimit(.minutes(6))) func redisAtMaxmemoryRefusesWrites() async throws {
        try await offPool {
            let redis = try DedicatedRedis(arguments: [])
            let row = try Self.harness(url: redis.url, seed: 19).run(
                "Redis at maxmemory (noeviction) twice for 2 s under load", engines: 1, redis: redis
            ) { faults, wave in
                if wave == 2 || wave == 5 {
                    faults.randomMoment(100)
                    faults.squeezeMemory(seconds: 2)
                }
            }
            Self.expectClean(row)
        }
    }

    /// Redis unreachable at start-up: a clear message and retries, not an exit; once Redis is there, it serves.
    @Test(.timeLimit(.minutes(2))) func engineWaitsForRedisAtStartUp() async throws {
        try await offPool {
            let executable = try #require(CrashTests.deeExecutable())
            let redis = try DedicatedRedis(arguments: [])
            redis.killHard()
            let prefix = TestRedis.uniquePrefix()
            let log = FileManager.default.temporaryDirectory.appendingPathComponent("dee-startup-\(prefix).log")
            defer { try? FileManager.default.removeItem(at: log) }
            let engine = try EngineProcess(
                executable: executable, url: redis.url, prefix: prefix, consumer: "startup", log: log)
            defer { engine.killHard() }
            let deadline = Date().addingTimeInterval(20)
            while Date() < deadline && !engine.output.contains("cannot reach Redis yet") { usleep(100_000) }
            #expect(engine.output.contains("cannot reach Redis yet"), "\(engine.output)")
            #expect(engine.isRunning, "the engine exited without Redis:\n\(engine.output)")
            try redis.start()
            let client = DEEClient(redis: RedisConnection(configuration: try RedisConfiguration(url: redis.url)), prefix: prefix)
            let reply = try client.call("registerPlan", ["plan": simplePlan("late")], timeout: 30)
            #expect(reply.ok, "\(reply.fields)\n\(engine.output)")
            #expect(!engine.output.contains("password"), "never prints credentials")
        }
    }
}
