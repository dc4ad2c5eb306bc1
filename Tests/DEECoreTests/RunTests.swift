import DEECore
import Testing

@Suite("Run")
struct RunTests {
    static func fullRun() -> Run {
        var run = Run(
            id: "1795428000000-000003-00007-2", planId: "welcome", planVersion: 3, contactId: "c1",
            contact: ["id": "c1", "email": "jane@example.com", "tier": "gold", "score": 42, "tags": ["a", "b"]],
            status: .paused, currentStep: "listen", stepsRemaining: 2, startTick: 10, startedAt: 1_795_428_000_000,
            variables: ["plan": "pro", "n": 3, "nested": ["k": [1, 2, nil]], "flag": true, "text": "line\n\"q\""])
        run.stepsCompleted = 3
        run.currentTick = 17
        run.completedAt = 1_795_428_999_999
        run.outcome = "replied"
        run.error = "boom: \"x\""
        run.pausedFrom = .waiting
        run.due = 22
        run.attempt = 2
        run.awaitKey = "0123456789abcdef0123456789abcdef"
        run.deferred = [["kind": "signal", "name": "replied", "data": ["x": 1]], ["kind": "actionResult", "ok": false]]
        run.auditHead = String(repeating: "ab", count: 32)
        run.auditCount = 9
        return run
    }

    static func fields(_ run: Run) -> [String: String] {
        var out: [String: String] = [:]
        for (k, v) in run.storedFields {
            if let v { out[k] = v }
        }
        return out
    }

    @Test func storedFieldsRoundTripAFullRun() throws {
        let run = Self.fullRun()
        let back = try #require(Run(fields: Self.fields(run)))
        #expect(back == run)
    }

    @Test func storedFieldsRoundTripAFreshRun() throws {
        let change = Fixtures.startedRun()
        let back = try #require(Run(fields: Self.fields(change.run)))
        #expect(back == change.run)
    }

    @Test func storedFieldsRoundTripATerminalRun() throws {
        var run = Fixtures.startedRun().run
        Transitions.finish(&run, status: .completed, outcome: "done", context: Fixtures.context(clock: 6))
        let back = try #require(Run(fields: Self.fields(run)))
        #expect(back == run)
        #expect(back.currentStep == nil)
        #expect(back.due == nil)
    }

    @Test func nullFieldsAreDeletedNotStoredEmpty() {
        let run = Fixtures.startedRun().run
        let stored = Dictionary(run.storedFields.map { ($0.0, $0.1) }, uniquingKeysWith: { a, _ in a })
        #expect(run.storedFields.count == stored.count, "no field appears twice")
        for key in ["completedAt", "outcome", "error", "pausedFrom", "attempt", "awaitKey", "deferred"] {
            #expect(stored[key] != nil, "\(key) is listed, so that it is deleted")
            #expect(stored[key]! == nil, "\(key) is nil for a fresh run")
        }
        #expect(stored["status"]! == "active")
        #expect(stored["variables"]! == #"{"tier":"gold"}"#)
        #expect(stored["auditCount"]! == "1")
    }

    @Test func initFromFieldsNeedsTheRequiredFields() {
        let good = Self.fields(Self.fullRun())
        #expect(Run(fields: good) != nil)
        for key in ["id", "planId", "planVersion", "contactId", "status", "startTick", "startedAt"] {
            var f = good
            f[key] = nil
            #expect(Run(fields: f) == nil, "without \(key)")
        }
        var badStatus = good
        badStatus["status"] = "running"
        #expect(Run(fields: badStatus) == nil)
        var badVersion = good
        badVersion["planVersion"] = "v3"
        #expect(Run(fields: badVersion) == nil)
    }

    @Test func initFromFieldsDefaultsOptionalFields() throws {
        let run = try #require(
            Run(fields: [
                "id": "r", "planId": "p", "planVersion": "1", "contactId": "c", "status": "pending", "startTick": "4",
                "startedAt": "0",
            ]))
        #expect(run.currentTick == 4)
        #expect(run.stepsCompleted == 0)
        #expect(run.variables.isEmpty)
        #expect(run.contact.isEmpty)
        #expect(run.auditHead == Run.genesis)
        #expect(run.auditCount == 0)
        #expect(run.deferred.isEmpty)
        #expect(run.attempt == 0)
        #expect(run.currentStep == nil)
    }

    @Test func wireFormHasExactlyTheAPIFields() throws {
        let run = Self.fullRun()
        let wire = try #require(run.wire.object)
        #expect(
            Set(wire.keys) == [
                "id", "planId", "planVersion", "contactId", "status", "currentStep", "stepsCompleted", "stepsRemaining",
                "startTick", "currentTick", "startedAt", "completedAt", "outcome", "variables", "error",
            ])
        #expect(wire["startedAt"] == "2026-11-23T10:00:00.000Z")
        #expect(wire["completedAt"] == "2026-11-23T10:16:39.999Z")
        #expect(wire["status"] == "paused")
        #expect(wire["planVersion"] == 3)
        #expect(wire["stepsCompleted"] == 3)
        #expect(wire["stepsRemaining"] == 2)
        #expect(wire["startTick"] == 10)
        #expect(wire["currentTick"] == 17)
        #expect(wire["currentStep"] == "listen")
        #expect(wire["outcome"] == "replied")
        #expect(wire["error"] == "boom: \"x\"")
        #expect(wire["variables"] == .object(run.variables))
    }

    @Test func wireFormOfAFreshRunHasNulls() throws {
        let wire = try #require(Fixtures.startedRun().run.wire.object)
        #expect(wire["completedAt"] == .null)
        #expect(wire["outcome"] == .null)
        #expect(wire["error"] == .null)
        #expect(wire["currentStep"] == "a")
    }

    @Test func statusOpenness() {
        #expect(RunStatus.open == [.pending, .active, .waiting, .paused])
        for s in RunStatus.allCases {
            #expect(s.isOpen == RunStatus.open.contains(s))
        }
        #expect(RunStatus.allCases.map(\.rawValue) == ["pending", "active", "waiting", "paused", "completed", "failed", "cancelled"])
    }

    @Test func errorCodesAreTheSpecsList() {
        #expect(
            Set(ErrorCode.allCases.map(\.rawValue)) == [
                "bad_request", "unknown_command", "not_found", "invalid_transition", "already_enrolled", "suppressed",
                "plan_invalid", "too_large", "internal",
            ])
    }

    @Test func errorJSONRoundTrip() throws {
        let e = DEEError.badRequest("contact.id", "must be an id")
        #expect(e.code == .badRequest)
        #expect(e.field == "contact.id")
        #expect(e.message == "contact.id: must be an id")
        #expect(e.description == "bad_request: contact.id: must be an id")
        #expect(e.json == ["code": "bad_request", "message": "contact.id: must be an id", "field": "contact.id"])
        #expect(DEEError(json: e.json) == e)
        let noField = DEEError(.internal, "oops")
        #expect(noField.json.object?["field"] == nil)
        #expect(DEEError(json: noField.json) == noField)
        #expect(DEEError(json: ["code": "nope", "message": "x"]) == nil)
        #expect(DEEError(json: "x") == nil)
    }
}

@Suite("Template")
struct TemplateTests {
    let contact: [String: JSONValue] = ["id": "c1", "email": "a@b.c", "n": .int(3), "o": ["k": "v"]]
    let variables: [String: JSONValue] = ["plan": "gold", "ü": "x"]

    func fill(_ s: String) -> Result<JSONValue, Template.Missing> {
        Result { () throws(Template.Missing) in
            try Template.fill(.string(s), contact: contact, variables: variables, path: "params.x")
        }
    }

    /// The ASCII fast path and the general path follow the same rules; the non-ASCII rows take the general one.
    @Test func placeholdersAreFilled() throws {
        let cases: [(String, JSONValue)] = [
            ("plain", "plain"),
            ("{{contact.email}}", "a@b.c"),
            (" \t{{ contact.n }} ", .int(3)),
            ("{{contact.o}}", ["k": "v"]),
            ("n={{contact.n}}!", "n=3!"),
            ("{{contact.id}}/{{vars.plan}}", "c1/gold"),
            ("open {{contact.id", "open {{contact.id"),
            ("{{contact.id}} and {{", "c1 and {{"),
            ("é {{contact.email}}", "é a@b.c"),
            ("  {{ vars.plan }}  é", "  gold  é"),
        ]
        for (template, expected) in cases {
            #expect(try fill(template).get() == expected, "\(template)")
        }
    }

    @Test func aMissingValueIsAnError() {
        for template in ["{{contact.nope}}", "x {{vars.none}} y", "{{}}", "{{contact}}", "é {{contact.nope}}"] {
            guard case .failure(let e) = fill(template) else {
                Issue.record("\(template) filled")
                continue
            }
            #expect(e.message.hasPrefix("params.x: {{"), "\(e.message)")
        }
    }
}
