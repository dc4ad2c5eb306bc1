import DEECore
import DEETestSupport
import Foundation
import Redis
import Testing

@testable import dee

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The `dee` command as a user drives it: the built executable, a real Redis and a `dee serve` child process; its
/// output (tables, and `--json` parsed) and its exit codes.
@Suite(.serialized, .offPool) struct CLITests {
    static let jane = #"{"id":"contact_123","email":"jane@example.com"}"#

    @Test func planRegisterRunExecuteAndRunsList() throws {
        let d = try Deployment()
        let registered = try d.dee("plan", "register", try d.file("welcome.json", Deployment.welcomePlan), "--json")
        #expect(registered.status == 0, "\(registered)")
        #expect(registered.json?["planId"] == "welcome")
        #expect(registered.json?["version"] == 1)
        #expect(registered.json?["created"] == true)

        let again = try d.dee("plan", "register", try d.file("welcome.json", Deployment.welcomePlan))
        #expect(again.status == 0)
        #expect(again.stdout.contains("unchanged"), "\(again)")

        let plans = try d.dee("plan", "list")
        #expect(plans.stdout.split(separator: "\n").first?.split(separator: " ").first == "PLAN", "\(plans)")
        #expect(plans.stdout.contains("welcome"))
        let plan = try d.dee("plan", "get", "welcome", "--json")
        #expect(plan.json?["steps"].array?.count == 4, "\(plan)")

        let executed = try d.dee("run", "execute", "--plan", "welcome", "--contact", Self.jane, "--json")
        #expect(executed.status == 0, "\(executed)")
        let run = try #require(executed.json)
        let runId = try #require(run["id"].string)
        #expect(run["status"] == "active")
        #expect(run["contactId"] == "contact_123")
        #expect(run["currentStep"] == "intro")

        let table = try d.dee("runs", "list", "--status", "active,waiting", "--plan", "welcome")
        #expect(table.status == 0, "\(table)")
        let lines = table.stdout.split(separator: "\n").map(String.init)
        #expect(lines.first?.hasPrefix("ID") == true, "\(table)")
        #expect(lines.contains { $0.hasPrefix(runId) && $0.contains("contact_123") && $0.contains("active") })
        #expect(lines.last == "runs 1-1 of 1")

        let listed = try d.dee("runs", "list", "--status", "active", "--status", "waiting", "--since", "24h", "--json")
        #expect(listed.status == 0, "\(listed)")
        #expect(listed.json?["total"] == 1)
        #expect(listed.json?["runs"].array?.first?["id"].string == runId)

        let none = try d.dee("runs", "list", "--status", "completed", "--json")
        #expect(none.json?["total"] == 0, "\(none)")
        let future = try d.dee("runs", "list", "--before", "2000-01-01T00:00:00Z", "--json")
        #expect(future.json?["total"] == 0, "\(future)")
    }

    @Test func runGetPauseResumeCancel() throws {
        let d = try Deployment()
        try d.registerWelcome()
        let runId = try #require(
            try d.dee("run", "execute", "--plan", "welcome", "--contact", Self.jane, "--json").json?["id"].string)

        let got = try d.dee("run", "get", runId)
        #expect(got.status == 0, "\(got)")
        #expect(got.stdout.contains("status       active"), "\(got)")

        let paused = try d.dee("run", "pause", runId, "--reason", "holiday", "--json")
        #expect(paused.json?["status"] == "paused", "\(paused)")
        let resumed = try d.dee("run", "resume", runId, "--json")
        #expect(resumed.json?["status"] == "active", "\(resumed)")
        let cancelled = try d.dee("run", "cancel", runId, "--reason", "Contact requested removal", "--json")
        #expect(cancelled.json?["status"] == "cancelled", "\(cancelled)")
        #expect(cancelled.json?["completedAt"].string != nil)

        let audit = try d.dee("audit", runId, "--json")
        let actions = (audit.json?.array ?? []).compactMap { $0["action"].string }
        #expect(actions.first == "cancel", "\(audit)")
        #expect(Set(actions).isSuperset(of: ["execute", "pause", "resume", "cancel"]))
        #expect((audit.json?.array ?? []).contains { $0["reason"] == "Contact requested removal" })
        let auditTable = try d.dee("audit", runId)
        #expect(auditTable.stdout.hasPrefix("AT"), "\(auditTable)")

        let verified = try d.dee("verify", runId, "--json")
        #expect(verified.json?["valid"] == true, "\(verified)")
        #expect(verified.json?["entries"].int == actions.count)
        let replayed = try d.dee("replay", runId, "--json")
        #expect(replayed.json?["identical"] == true, "\(replayed)")
        let replayTable = try d.dee("replay", runId)
        #expect(replayTable.stdout.hasPrefix("identical: yes"), "\(replayTable)")
    }

    /// `dee contact` finds the contact's record (layout 3) and reads it as redis-cli would.
    @Test func contactShowsItsRecord() throws {
        let d = try Deployment()
        try d.registerWelcome()
        let runId = try #require(
            try d.dee("run", "execute", "--plan", "welcome", "--contact", Self.jane, "--json").json?["id"].string)
        let shown = try d.dee("contact", "contact_123", "--json")
        #expect(shown.status == 0, "\(shown)")
        #expect(shown.json?["partition"] == 0)
        #expect(shown.json?["runs"].array?.first?["id"].string == runId, "\(shown)")
        #expect(shown.json?["runs"].array?.first?["openPlan"] == "welcome", "\(shown)")
        let key = try d.dee("contact", "contact_123", "--key").stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(try d.redis.call(["HGET", key, "contact_123"]).string == "\(runId)/welcome")
        let text = try d.dee("contact", "contact_123")
        #expect(text.stdout.contains("\(runId)  open: welcome"), "\(text)")
        let nobody = try d.dee("contact", "nobody", "--json")
        #expect(nobody.status == 0 && nobody.json?["runs"].array?.isEmpty == true, "\(nobody)")
        #expect(try d.dee("contact", "bad id").status == 2)
    }

    @Test func commandErrorExitsOneWithItsCode() throws {
        let d = try Deployment()
        let missing = try d.dee("run", "get", "1795465714287-000000-00000-0")
        #expect(missing.status == 1, "\(missing)")
        #expect(missing.stderr.contains("not_found"), "\(missing)")
        #expect(missing.stdout.isEmpty)

        let json = try d.dee("run", "get", "1795465714287-000000-00000-0", "--json")
        #expect(json.status == 1, "\(json)")
        #expect(json.errorJSON?["error"] == "not_found", "\(json)")
        #expect(json.errorJSON?["message"].string?.isEmpty == false)
        #expect(json.stdout.isEmpty)

        try d.registerWelcome()
        #expect(try d.dee("run", "execute", "--plan", "welcome", "--contact", Self.jane).status == 0)
        let enrolled = try d.dee("run", "execute", "--plan", "welcome", "--contact", Self.jane, "--json")
        #expect(enrolled.status == 1, "\(enrolled)")
        #expect(enrolled.errorJSON?["error"] == "already_enrolled", "\(enrolled)")

        let invalid = try d.dee("plan", "register", try d.file("bad.json", #"{"id":"bad","name":"Bad","steps":[]}"#))
        #expect(invalid.status == 1, "\(invalid)")
        #expect(invalid.stderr.contains("plan_invalid"), "\(invalid)")
    }

    @Test(arguments: [
        ["runs", "list", "--status", "bogus"],
        ["runs", "list", "--limit", "0"],
        ["runs", "list", "--since", "yesterday"],
        ["runs", "list", "--no-such-flag"],
        ["run", "execute", "--plan", "welcome", "--contact", "{not json"],
        ["run", "cancel", "1795465714287-000000-00000-0"],
        ["signal", "replied"],
        ["bulk", "cancel", "--reason", "no filter"],
        ["nosuchcommand"],
    ])
    func usageErrorExitsTwo(arguments: [String]) throws {
        let url = try TestRedisURL.url()
        let plain = try CLI.run(arguments + ["--redis-url", url])
        #expect(plain.status == 2, "\(plain)")
        #expect(!plain.stderr.isEmpty)
        let json = try CLI.run(arguments + ["--redis-url", url, "--json"])
        #expect(json.status == 2, "\(json)")
        #expect(json.errorJSON?["error"] == "usage", "\(json)")
    }

    @Test func plansAndContactsFromStdin() throws {
        let d = try Deployment()
        let plan = #"{"id":"short","name":"Short","steps":[{"id":"done","type":"end","outcome":"ok"}]}"#
        let registered = try d.dee("plan", "register", "-", "--json", input: plan)
        #expect(registered.status == 0, "\(registered)")
        #expect(registered.json?["planId"] == "short")
        let run = try d.dee("run", "execute", "--plan", "short", "--contact", "@-", "--json", input: #"{"id":"s1"}"#)
        #expect(run.json?["contactId"] == "s1", "\(run)")
        let bad = try d.dee("run", "execute", "--plan", "short", "--contact", "@-", "--json", input: "{oops")
        #expect(bad.status == 2, "\(bad)")
        #expect(bad.errorJSON?["error"] == "usage", "\(bad)")
        let badFile = try d.dee("bulk", "execute", "--plan", "short", "--contacts", try d.file("bad.jsonl", "{\"id\":\"a\"}\n{oops\n"))
        #expect(badFile.status == 2, "\(badFile)")
        #expect(badFile.stderr.contains("line 2"), "\(badFile)")
    }

    @Test func helpShowsAnExampleAndExitsZero() throws {
        for arguments in [["--help"], ["runs", "list", "--help"], ["bulk", "execute", "--help"], ["events", "tail", "--help"]] {
            let help = try CLI.run(arguments)
            #expect(help.status == 0, "\(help)")
            #expect(help.stdout.contains("Example"), "\(arguments): \(help)")
            #expect(help.stdout.contains("USAGE"))
        }
    }

    @Test func noEngineOrNoRedisExitsThree() throws {
        let d = try Deployment(engine: false)
        let silent = try d.dee("stats", "--timeout", "300ms")
        #expect(silent.status == 3, "\(silent)")
        #expect(silent.stderr.contains("timeout"), "\(silent)")
        let silentJSON = try d.dee("stats", "--timeout", "300ms", "--json")
        #expect(silentJSON.status == 3)
        #expect(silentJSON.errorJSON?["error"] == "timeout", "\(silentJSON)")

        // A loopback port nobody listens on: the port of a socket we bound and closed.
        let unreachable = try CLI.run(["runs", "list", "--redis-url", "redis://127.0.0.1:\(try TestRedisURL.closedPort())", "--json"])
        #expect(unreachable.status == 3, "\(unreachable)")
        #expect(unreachable.errorJSON?["error"] == "unreachable", "\(unreachable)")
        let tail = try CLI.run(["events", "tail", "--redis-url", "redis://127.0.0.1:\(try TestRedisURL.closedPort())"])
        #expect(tail.status == 3, "\(tail)")
    }

    @Test func bulkExecuteFromJSONLinesAndCSV() throws {
        let d = try Deployment()
        try d.registerWelcome()
        let jsonl = try d.file(
            "contacts.jsonl", "{\"id\":\"j1\",\"email\":\"j1@example.com\"}\n\n{\"id\":\"j2\"}\n{\"id\":\"j3\"}\n")
        let fromJSONL = try d.dee("bulk", "execute", "--plan", "welcome", "--contacts", jsonl, "--json", "--chunk", "2")
        #expect(fromJSONL.status == 0, "\(fromJSONL)")
        #expect(fromJSONL.json?["created"] == 3, "\(fromJSONL)")
        #expect(fromJSONL.json?["skipped"] == 0)

        // c1 twice (the second skipped: already enrolled), j1 again (skipped), a bad id (an error).
        let csv = try d.file(
            "contacts.csv",
            "id,email,name\r\nc1,c1@example.com,\"One, Esq.\"\r\nc2,c2@example.com,\r\nc1,again@example.com,x\r\nj1,,\r\nbad id,x@example.com,\r\n")
        let fromCSV = try d.dee("bulk", "execute", "--plan", "welcome", "--contacts", csv, "--json", "--chunk", "3")
        #expect(fromCSV.status == 0, "\(fromCSV)")
        let result = try #require(fromCSV.json)
        #expect(result["created"] == 2, "\(fromCSV)")
        #expect(result["skipped"] == 2)
        #expect(result["errors"] == 1)
        // Indexes are the contacts' places in the whole file, across chunks.
        #expect(Set((result["skippedContacts"].array ?? []).compactMap { $0["index"].int }) == [2, 3], "\(result)")
        #expect((result["errorDetails"].array ?? []).first?["index"] == 4, "\(result)")

        let c1 = try d.dee("runs", "list", "--contact", "c1", "--json")
        #expect(c1.json?["total"] == 1, "\(c1)")
        let run = try #require(c1.json?["runs"].array?.first)
        #expect(run["planId"] == "welcome")

        let again = try d.dee("bulk", "execute", "--plan", "welcome", "--contacts", csv)
        #expect(again.status == 0, "\(again)")
        #expect(again.stdout.hasPrefix("created 0, skipped 4, errors 1 (5 contacts, plan welcome)"), "\(again)")
        #expect(try d.dee("runs", "list", "--json").json?["total"] == 5)
    }

    @Test func bulkCancelAsksOrNeedsYes() throws {
        let d = try Deployment()
        try d.registerWelcome()
        let file = try d.file("contacts.jsonl", (1...4).map { "{\"id\":\"k\($0)\"}" }.joined(separator: "\n"))
        #expect(try d.dee("bulk", "execute", "--plan", "welcome", "--contacts", file).status == 0)

        // stdin is not a terminal (a file), and no --yes: exit 2, nothing cancelled.
        let refused = try d.dee("bulk", "cancel", "--plan", "welcome", "--reason", "Plan deprecated", input: "y\n")
        #expect(refused.status == 2, "\(refused)")
        #expect(refused.stderr.contains("4 open runs match"), "\(refused)")
        let refusedJSON = try d.dee("bulk", "cancel", "--plan", "welcome", "--reason", "Plan deprecated", "--json")
        #expect(refusedJSON.status == 2, "\(refusedJSON)")
        #expect(refusedJSON.errorJSON?["error"] == "usage")
        #expect(try d.dee("runs", "list", "--status", "cancelled", "--json").json?["total"] == 0)
        #expect(try d.dee("runs", "list", "--status", "active", "--json").json?["total"] == 4)

        let cancelled = try d.dee("bulk", "cancel", "--plan", "welcome", "--reason", "Plan deprecated", "--yes", "--json")
        #expect(cancelled.status == 0, "\(cancelled)")
        #expect(cancelled.json?["cancelled"] == 4, "\(cancelled)")
        #expect(try d.dee("runs", "list", "--status", "cancelled", "--json").json?["total"] == 4)

        let nothing = try d.dee("bulk", "cancel", "--plan", "welcome", "--reason", "again")
        #expect(nothing.status == 0, "\(nothing)")
        #expect(nothing.stdout.contains("nothing cancelled"))
    }

    @Test func tickSignalSuppressAndEventsTail() throws {
        let d = try Deployment()
        try d.registerWelcome()
        let runId = try #require(
            try d.dee("run", "execute", "--plan", "welcome", "--contact", Self.jane, "--json").json?["id"].string)
        let ticked = try d.dee("tick", "--count", "6", "--json")
        #expect(ticked.json?["tick"] == 6, "\(ticked)")
        #expect(ticked.json?["stepped"].int ?? 0 > 0)
        #expect(try d.dee("run", "get", runId, "--json").json?["status"] == "completed")
        #expect(try d.dee("tick").stdout.hasPrefix("tick 7:"))

        let second = try #require(
            try d.dee("run", "execute", "--plan", "welcome", "--contact", Self.jane, "--json").json?["id"].string)
        let signalled = try d.dee("signal", "unsubscribed", "--contact", "contact_123", "--json")
        #expect(signalled.json?["delivered"] == 1, "\(signalled)")
        #expect(try d.dee("run", "get", second, "--json").json?["outcome"] == "unsubscribed")

        let suppressed = try d.dee("suppress", "contact_123", "--reason", "bounced", "--json")
        #expect(suppressed.status == 0, "\(suppressed)")
        #expect(suppressed.json?["cancelled"] == 0)
        let blocked = try d.dee("run", "execute", "--plan", "welcome", "--contact", Self.jane, "--json")
        #expect(blocked.status == 1)
        #expect(blocked.errorJSON?["error"] == "suppressed", "\(blocked)")
        #expect(try d.dee("unsuppress", "contact_123").status == 0)
        #expect(try d.dee("run", "execute", "--plan", "welcome", "--contact", Self.jane).status == 0)

        // Bounded by --count: the first three events of the first run, as JSON lines.
        let tail = try d.dee("events", "tail", "--from", "0", "--run", runId, "--count", "3", "--json", limit: 30)
        #expect(tail.status == 0, "\(tail)")
        let events = tail.jsonLines
        #expect(events.count == 3, "\(tail)")
        #expect(events.allSatisfy { $0["runId"].string == runId && $0["partition"] == 0 })
        #expect(events.first?["type"] == "run.created")
        #expect(events.first?["tick"] == 0)

        // Bounded by --no-follow: everything the streams hold, filtered by type.
        let completed = try d.dee("events", "tail", "--from", "0", "--type", "run.completed", "--no-follow", "--json")
        #expect(completed.status == 0, "\(completed)")
        #expect(Set(completed.jsonLines.compactMap { $0["runId"].string }) == [runId, second], "\(completed)")
        let readable = try d.dee("events", "tail", "--from", "0", "--plan", "welcome", "--no-follow")
        #expect(readable.stdout.contains("run.created"), "\(readable)")

        // Following: started after the last event there is now, the tail prints the next one (a pause), and
        // --count ends it.
        let last = try #require(
            try d.dee("events", "tail", "--from", "0", "--no-follow", "--json").jsonLines.last?["id"].string)
        let third = try #require(
            try d.dee("runs", "list", "--status", "active", "--json").json?["runs"].array?.first?["id"].string)
        let follower = try CLI.start(["events", "tail", "--from", last, "--count", "1", "--json"] + d.options)
        #expect(try d.dee("run", "pause", third).status == 0)
        let followed = follower.wait(limit: 30)
        #expect(followed.status == 0, "\(followed)")
        #expect(followed.jsonLines.map { $0["type"] } == ["run.paused"], "\(followed)")
        #expect(followed.jsonLines.first?["runId"].string == third)

        let stats = try d.dee("stats", "--json")
        #expect(stats.status == 0, "\(stats)")
        #expect(stats.json?["tick"] == 7)
        #expect(stats.json?["runsByStatus"]["completed"] == 2, "\(stats)")
        #expect(stats.json?["runsByStatus"]["paused"] == 1)
        #expect(stats.json?["plans"] == 1)
        let statsTable = try d.dee("stats")
        #expect(statsTable.stdout.contains("completed  2"), "\(statsTable)")
    }

    @Test func deadletterListAndRetry() throws {
        let d = try Deployment()
        let empty = try d.dee("deadletter", "list", "--json")
        #expect(empty.status == 0, "\(empty)")
        #expect(empty.json == .array([]))
        #expect(try d.dee("deadletter", "list").stdout == "no dead letters\n")

        // A dead letter as the engine writes one (README: commandId, source, error, entry), of a tick command.
        let entry = JSONValue.array([.array(["type", "tick"]), .array(["count", "2"])]).canonical
        let id = try #require(
            try d.redis.call([
                "XADD", "\(d.prefix):deadletter", "*", "commandId", "1795465714287-0", "source", "partition 0", "error",
                "internal: injected by the test", "entry", entry,
            ]).string)
        let listed = try d.dee("deadletter", "list", "--json")
        let letter = try #require(listed.json?.array?.first)
        #expect(letter["id"].string == id, "\(listed)")
        #expect(letter["entry"]["type"] == "tick")
        let table = try d.dee("deadletter", "list")
        #expect(table.stdout.contains(id) && table.stdout.contains("tick"), "\(table)")

        let retried = try d.dee("deadletter", "retry", id, "--json")
        #expect(retried.status == 0, "\(retried)")
        #expect(retried.json?["redriven"].string == id)
        #expect(try d.dee("deadletter", "list", "--json").json == .array([]))
        let gone = try d.dee("deadletter", "retry", id)
        #expect(gone.status == 1, "\(gone)")
        #expect(gone.stderr.contains("not_found"))
    }
}

/// The test Redis's URL, and a loopback port nobody listens on.
enum TestRedisURL {
    static func url() throws -> String { try TestRedis.url() }

    static func closedPort() throws -> UInt16 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr = in_addr(s_addr: UInt32(0x7f00_0001).bigEndian)
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let ok = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0
            }
        }
        guard ok else { throw CLIHarnessError(description: "could not bind a loopback port") }
        return UInt16(bigEndian: address.sin_port)
    }
}
