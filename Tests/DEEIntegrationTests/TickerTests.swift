import DEEClient
import DEEService
import DEETestSupport
import Foundation
import Logging
import Redis
import Testing

/// `--tick-every`: one process advances the clock, and another takes over when it stops. Every wait here is a
/// bounded poll for a state, never an assertion about timing.
@Suite(.serialized)
struct TickerTests {
    func engine(_ prefix: String, consumer: String, url: String) throws -> Engine {
        try TestEngine.engine(prefix, consumer: consumer, url: url) { $0.tickEverySeconds = 0.1 }
    }

    func tick(_ client: DEEClient) throws -> Int {
        let reply = try client.call("stats")
        return (reply.object["tick"] as? Int) ?? -1
    }

    /// Polls until `condition` holds, for at most `seconds`.
    func eventually(_ seconds: Double, _ condition: () throws -> Bool) throws -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if try condition() { return true }
            Thread.sleep(forTimeInterval: 0.05)
        }
        return false
    }

    @Test func wallClockTicksAdvanceTheClockAndAnotherProcessTakesOver() async throws {
        let url = try TestRedis.url()
        let prefix = TestRedis.uniquePrefix()
        let redis = RedisConnection(configuration: try RedisConfiguration(url: url))
        let a = Task { try await engine(prefix, consumer: "a", url: url).run() }
        let client = DEEClient(redis: RedisConnection(configuration: try RedisConfiguration(url: url)), prefix: prefix)

        let ticked = try await offPool { [self] in try eventually(20) { try tick(client) >= 3 } }
        #expect(ticked, "the ticker never advanced the clock")
        // The lease (3 s) may lapse for a moment on a starved machine and be taken again: poll for the holder.
        let heldByA = try await offPool { [self] in
            try eventually(20) { try redis.call(["GET", "\(prefix):ticker"]).string == "a/test" }
        }
        #expect(heldByA, "A never held the ticker lease")

        // Stop A; B must take the ticker over once A's lease expires.
        a.cancel()
        _ = try? await a.value
        let b = Task { try await engine(prefix, consumer: "b", url: url).run() }
        defer { b.cancel() }
        let before = try await offPool { [self] in try tick(client) }
        let resumed = try await offPool { [self] in
            try eventually(30) { try tick(client) >= before + 3 }
        }
        #expect(resumed, "no tick after the first ticker stopped")
        let heldByB = try await offPool { [self] in
            try eventually(20) { try redis.call(["GET", "\(prefix):ticker"]).string == "b/test" }
        }
        #expect(heldByB, "B never held the ticker lease")
        // Ticks went through the ingress stream like any command: the entries say who sent them.
        let entries = try redis.call(["XRANGE", "\(prefix):commands", "-", "+", "COUNT", "5"]).array ?? []
        #expect(!entries.isEmpty)
        b.cancel()
        _ = try? await b.value
        try redis.unlinkKeys(matching: "\(prefix):*")
    }
}
