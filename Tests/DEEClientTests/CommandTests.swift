import DEEClient
import DEECore
import Redis
import Testing

/// The untyped face: `command(_:_:)` and the typed error.
@Suite struct CommandTests {
    @Test func commandReturnsTheResultJSON() async throws {
        try await ClientHarness.with { engine, _ in
            let registered = try await engine.command("registerPlan", ["plan": welcomePlanJSON])
            #expect(registered.object?["planId"] == "welcome")
            #expect(registered.object?["version"] == 1)
            let plans = try await engine.command("listPlans", [:])
            #expect(plans.array?.first?.object?["latestVersion"] == 1)
        }
    }

    @Test func notFoundIsATypedErrorWithItsCode() async throws {
        try await ClientHarness.with { engine, _ in
            let error = await #expect(throws: DEEClientError.self) {
                _ = try await engine.command("getRun", ["runId": "1700000000000-000000-00000-0"])
            }
            #expect(error?.kind == .command)
            #expect(error?.code == "not_found")
            #expect(error?.errorCode == .notFound)
            #expect(error?.field == "runId")
            #expect(error?.message.contains("1700000000000-000000-00000-0") == true)
        }
    }

    @Test func badRequestNamesTheField() async throws {
        try await ClientHarness.with { engine, _ in
            let error = await #expect(throws: DEEClientError.self) {
                _ = try await engine.command("listRuns", ["limit": "0"])
            }
            #expect(error?.code == "bad_request")
            #expect(error?.field == "limit")
        }
    }

    @Test func timesOutWhenNoEngineRuns() async throws {
        // Republished after each third of the timeout: at 2 s and 4 s. On a loaded machine republishes may fall past
        // the deadline (seen with a 3 s timeout while two builds ran, and once with 6 s in a full suite beside the
        // cluster scenarios), so the count is 1 to 3, never more than the attempts. That republishing happens at all
        // is `ClientBehaviourTests.republishedAfterNoReplyTheRunIsCreatedOnce`'s check, which waits for it.
        try await ClientHarness.with(engine: false, timeout: .seconds(6), attempts: 3) { engine, env in
            let error = await #expect(throws: DEEClientError.self) {
                _ = try await engine.command("stats", [:], requestId: "no-engine")
            }
            #expect(error?.kind == .timeout)
            #expect(error?.requestId == "no-engine")
            // Published once per attempt, always with the same requestId.
            let entries = try await env.raw.call(["XRANGE", env.key("commands"), "-", "+"]).streamEntries
            #expect((1...3).contains(entries.count), "\(entries.count) publishes")
            #expect(entries.allSatisfy { $0.fields["requestId"] == "no-engine" })
        }
    }

    @Test func unreachableRedisIsItsOwnKind() async throws {
        // A loopback port nobody listens on: bind one, then let it go.
        let port = try freePort()
        let error = await #expect(throws: DEEClientError.self) {
            _ = try await DEEEngine(redis: RedisConfiguration(host: "127.0.0.1", port: port), prefix: "tnone")
        }
        #expect(error?.kind == .unreachable)
    }
}
