@testable import DEEClient
import DEECore
import Foundation
import Redis
import Testing

/// What the client promises besides the commands: safe retries, sharing between tasks, its reply stream's life.
@Suite struct ClientBehaviourTests {
    @Test func theSameRequestIdGivesTheSameRunNotTwo() async throws {
        try await ClientHarness.with { engine, _ in
            let plan = try Plan(json: welcomePlanJSON)
            let first = try await engine.execute(plan, contact: Contact(id: "once"), requestId: "order-42")
            let again = try await engine.execute(plan, contact: Contact(id: "once"), requestId: "order-42")
            #expect(again == first)
            #expect(try await engine.listRuns(contactId: "once").total == 1)
        }
    }

    @Test func republishedAfterNoReplyTheRunIsCreatedOnce() async throws {
        // No engine at first: the client publishes again (same requestId) each time a part of its timeout passes
        // without a reply. When the engine starts it sees every copy, applies one, and replies the stored result
        // to the others.
        try await ClientHarness.with(engine: false, timeout: .seconds(60), attempts: 30) { engine, env in
            let plan = try Plan(json: welcomePlanJSON)
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    let run = try await engine.execute(plan, contact: Contact(id: "retried"), requestId: "lost-reply")
                    #expect(run.status == .active)
                }
                try await waitFor { try await env.raw.call(["XLEN", env.key("commands")]).int ?? 0 >= 2 }
                // Read the copies before the engine starts: it trims the ingress entries it has acknowledged.
                let entries = try await env.raw.call(["XRANGE", env.key("commands"), "-", "+"]).streamEntries
                #expect(entries.count >= 2)
                #expect(entries.allSatisfy { $0.fields["requestId"] == "lost-reply" })
                try await env.withEngine { try await group.waitForAll() }
            }
            try await env.withEngine {
                let client = try await env.client()
                #expect(try await client.listRuns(contactId: "retried").total == 1)
                await client.close()
            }
        }
    }

    @Test func aCutConnectionIsSurvived() async throws {
        try await ClientHarness.with(engine: false, timeout: .seconds(60), attempts: 2) { engine, env in
            let ids = try await engine.connectionIDs()
            let plan = try Plan(json: welcomePlanJSON)
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    let run = try await engine.execute(plan, contact: Contact(id: "cut"))
                    #expect(run.contactId == "cut")
                }
                try await waitFor { try await env.raw.call(["XLEN", env.key("commands")]).int ?? 0 >= 1 }
                // Cut the client's reader (blocked in XREAD) and writer.
                for id in ids { _ = try await env.raw.send(["CLIENT", "KILL", "ID", String(id)]) }
                try await env.withEngine {
                    try await group.waitForAll()
                    // The writer's connection was cut too: the next publish meets it, reconnects and goes on.
                    #expect(try await engine.listRuns(contactId: "cut").total == 1)
                }
            }
        }
    }

    @Test func manyTasksSharingOneClientEachGetTheirOwnReply() async throws {
        try await ClientHarness.with { engine, _ in
            let plan = try Plan(json: welcomePlanJSON)
            _ = try await engine.registerPlan(plan)
            let runs = try await withThrowingTaskGroup(of: (Int, ExecutionRun).self) { group in
                for n in 0..<60 {
                    group.addTask {
                        let run = try await engine.execute(planId: "welcome", contact: Contact(id: "task_\(n)"))
                        // And a read on the same client, interleaved with the other tasks' executes.
                        return (n, try await engine.getRun(run.id))
                    }
                }
                var out: [Int: ExecutionRun] = [:]
                for try await (n, run) in group { out[n] = run }
                return out
            }
            #expect(runs.count == 60)
            for (n, run) in runs { #expect(run.contactId == "task_\(n)") }
            #expect(Set(runs.values.map(\.id)).count == 60)
            #expect(try await engine.listRuns(status: [.active]).total == 60)
        }
    }

    @Test func theReplyStreamHasATTLAndIsGoneAfterClose() async throws {
        try await ClientHarness.with { engine, env in
            let client = try await DEEEngine(
                redis: env.redis, prefix: env.prefix, replyStreamTTL: .seconds(120))
            #expect(client.replyStream.hasPrefix("\(env.prefix):replies:"))
            _ = try await client.stats()
            let ttl = try await env.raw.call(["PTTL", client.replyStream]).int ?? -2
            #expect(ttl > 0 && ttl <= 120_000)
            await client.close()
            #expect(try await env.raw.call(["EXISTS", client.replyStream]).int == 0)
            let error = await #expect(throws: DEEClientError.self) { _ = try await client.stats() }
            #expect(error?.kind == .cancelled)
            _ = engine
        }
    }

    @Test func aLateReplyAfterCloseLeavesNoStreamWithoutTTL() async throws {
        try await ClientHarness.with(engine: false) { _, env in
            let client = try await env.client(timeout: .milliseconds(300), attempts: 1)
            let stream = client.replyStream
            _ = await #expect(throws: DEEClientError.self) { _ = try await client.stats() }
            await client.close()
            // The engine starts after the client has gone: its reply recreates the stream, with a TTL.
            try await env.withEngine {
                try await waitFor { try await env.raw.call(["EXISTS", stream]).int == 1 }
            }
            let ttl = try await env.raw.call(["PTTL", stream]).int ?? -2
            #expect(ttl > 0)
        }
    }

    @Test func aCancelledCallThrowsCancelled() async throws {
        try await ClientHarness.with(engine: false, timeout: .seconds(60)) { engine, env in
            let task = Task { try await engine.command("stats", [:]) }
            try await waitFor { try await env.raw.call(["XLEN", env.key("commands")]).int ?? 0 >= 1 }
            task.cancel()
            let result = await task.result
            #expect(throws: DEEClientError.self) { try result.get() }
            if case .failure(let error as DEEClientError) = result { #expect(error.kind == .cancelled) }
        }
    }

    @Test func closeWakesWaitingCalls() async throws {
        try await ClientHarness.with(engine: false, timeout: .seconds(60)) { engine, env in
            try await withThrowingTaskGroup(of: DEEClientError.Kind?.self) { group in
                for _ in 0..<3 {
                    group.addTask {
                        do {
                            _ = try await engine.command("stats", [:])
                            return nil
                        } catch let error as DEEClientError {
                            return error.kind
                        } catch {
                            return nil
                        }
                    }
                }
                try await waitFor { try await env.raw.call(["XLEN", env.key("commands")]).int ?? 0 >= 3 }
                await engine.close()
                for try await kind in group { #expect(kind == .cancelled) }
            }
        }
    }

    @Test func theTypedRunIsTheEnginesWireForm() async throws {
        try await ClientHarness.with { engine, _ in
            let run = try await engine.execute(
                try Plan(json: welcomePlanJSON), contact: Contact(id: "wire", email: "w@example.com"),
                variables: ["tier": "gold", "n": 3])
            let raw = try await engine.command("getRun", ["runId": run.id])
            #expect(run.wire == raw)
            let encoded = try JSONEncoder().encode(run)
            #expect(JSONValue.parse(String(decoding: encoded, as: UTF8.self)) == raw)
            #expect(try JSONDecoder().decode(ExecutionRun.self, from: encoded) == run)
        }
    }
}

/// Polls `condition` (at most 20 s) until it holds.
func waitFor(_ condition: () async throws -> Bool) async throws {
    for _ in 0..<400 {
        if try await condition() { return }
        try await Task.sleep(for: .milliseconds(50))
    }
    Issue.record("the condition did not hold within 20 s")
}
