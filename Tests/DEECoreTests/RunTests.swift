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

    /// A run hash as layout 1 wrote it (long names, every field but nulls), the form `dee migrate` converts.
    static func legacyFields(_ r: Run) -> [String: String] {
        let all: [(String, String?)] = [
            ("id", r.id), ("planId", r.planId), ("planVersion", String(r.planVersion)), ("contactId", r.contactId),
            ("status", r.status.rawValue), ("currentStep", r.currentStep),
            ("stepsCompleted", String(r.stepsCompleted)), ("stepsRemaining", String(r.stepsRemaining)),
            ("startTick", String(r.startTick)), ("currentTick", String(r.currentTick)),
            ("startedAt", String(r.startedAt)), ("completedAt", r.completedAt.map { String($0) }),
            ("outcome", r.outcome), ("variables", JSONValue.object(r.variables).canonical), ("error", r.error),
            ("contact", JSONValue.object(r.contact).canonical), ("pausedFrom", r.pausedFrom?.rawValue),
            ("due", r.due.map { String($0) }), ("attempt", r.attempt == 0 ? nil : String(r.attempt)),
            ("awaitKey", r.awaitKey), ("deferred", r.deferred.isEmpty ? nil : JSONValue.array(r.deferred).canonical),
            ("auditHead", r.auditHead), ("auditCount", String(r.auditCount)),
        ]
        return Dictionary(uniqueKeysWithValues: all.compactMap { k, v in v.map { (k, $0) } })
    }

    @Test func wireTextIsTheCanonicalWireForm() {
        var terminal = Fixtures.startedRun().run
        Transitions.finish(&terminal, status: .completed, outcome: "done", context: Fixtures.context(clock: 6))
        var unicode = Self.fullRun()
        unicode.contactId = "ü\u{1}\u{7f}\\/é🙂"
        unicode.variables = [:]
        unicode.currentStep = nil
        for run in [Self.fullRun(), Fixtures.startedRun().run, terminal, unicode] {
            #expect(run.wireText == run.wire.canonical)
        }
    }

    @Test func storedFieldsRoundTripAFullRun() throws {
        let run = Self.fullRun()
        let back = try #require(Run(id: run.id, fields: Self.fields(run)))
        #expect(back == run)
    }

    @Test func storedFieldsRoundTripAFreshRun() throws {
        let change = Fixtures.startedRun()
        let back = try #require(Run(id: change.run.id, fields: Self.fields(change.run)))
        #expect(back == change.run)
    }

    @Test func storedFieldsRoundTripATerminalRun() throws {
        var run = Fixtures.startedRun().run
        Transitions.finish(&run, status: .completed, outcome: "done", context: Fixtures.context(clock: 6))
        let back = try #require(Run(id: run.id, fields: Self.fields(run)))
        #expect(back == run)
        #expect(back.currentStep == nil)
        #expect(back.due == nil)
    }

    @Test func aStartedAtOtherThanTheIdsMillisecondIsStored() throws {
        var run = Self.fullRun()
        run.startedAt += 1
        #expect(Self.fields(run)["sa"] == String(run.startedAt))
        #expect(Run(id: run.id, fields: Self.fields(run)) == run)
        #expect(Self.fields(Self.fullRun())["sa"] == nil)
    }

    @Test func layoutOneHashesReadTheSame() throws {
        var terminal = Fixtures.startedRun().run
        Transitions.finish(&terminal, status: .completed, outcome: "done", context: Fixtures.context(clock: 6))
        for run in [Self.fullRun(), Fixtures.startedRun().run, terminal] {
            #expect(Run(fields: Self.legacyFields(run)) == run)
            #expect(Run(id: run.id, fields: Self.legacyFields(run)) == run)
        }
    }

    /// A layout-1 hash updated by this engine (only the changed fields, by short name) reads as the new run: set
    /// fields win over their long names, deleted ones are deleted under both names.
    @Test func aLayoutOneHashUpdatedInPartReadsTheNewRun() throws {
        var before = Self.fullRun()
        before.status = .waiting
        before.pausedFrom = nil
        let change = {
            var c = RunChange(run: before)
            c.run.status = .active
            c.run.attempt = 0
            c.run.stepsCompleted = 0
            c.run.currentTick = c.run.startTick
            c.run.awaitKey = nil
            c.run.variables = [:]
            c.run.auditCount = 10
            return c
        }()
        var hash = Self.legacyFields(before)
        let (set, deleted) = change.fieldChanges
        for k in deleted { hash[k] = nil }
        for (k, v) in set { hash[k] = v }
        #expect(Set(deleted).isSuperset(of: ["at", "attempt", "n", "stepsCompleted", "k", "awaitKey", "vr", "variables"]))
        #expect(Run(id: before.id, fields: hash) == change.run)
    }

    /// The pairs reader (listRuns and ticks read `HGETALL`'s pairs) reads what the dictionary reader does: layout 2,
    /// layout 1, and a mix in either order, where a short name wins over its long one.
    @Test func storedPairsReadLikeTheDictionary() throws {
        let run = Self.fullRun()
        let short = Self.fields(run), long = Self.legacyFields(run)
        #expect(Run(id: run.id, storedPairs: short.map { ($0.key, $0.value) }) == run)
        #expect(Run(storedPairs: long.map { ($0.key, $0.value) }) == run)
        var stale = long
        stale["status"] = "failed"
        stale["planVersion"] = "77"
        let mixed = stale.map { ($0.key, $0.value) } + [("s", run.status.rawValue), ("v", String(run.planVersion))]
        #expect(Run(id: run.id, storedPairs: mixed) == run)
        #expect(Run(id: run.id, storedPairs: Array(mixed.reversed())) == run)
        #expect(Run(id: run.id, storedPairs: [("p", "x"), ("c", "y")]) == nil, "no version, no status")
    }

    @Test func fieldChangesWriteWhatAFullWriteWould() throws {
        var change = RunChange(run: Self.fullRun())
        change.run.startTick = 17
        change.run.status = .waiting
        change.run.pausedFrom = nil
        var hash = Self.fields(Self.fullRun())
        let (set, deleted) = change.fieldChanges
        for k in deleted { hash[k] = nil }
        for (k, v) in set { hash[k] = v }
        #expect(hash == Self.fields(change.run), "currentTick is stored relative to startTick")
    }

    @Test func aNewRunIsWrittenWithItsPresentFields() {
        var full = Fixtures.startedRun().run
        full.completedAt = 5
        full.outcome = "done"
        full.error = "e"
        full.pausedFrom = .active
        full.attempt = 2
        full.awaitKey = "k"
        full.deferred = [["x": 1]]
        for run in [Fixtures.startedRun().run, full] {
            let present = run.storedFields.compactMap { k, v in v.map { (k, $0) } }
            #expect(run.presentStoredFields.map(\.0) == present.map(\.0))
            #expect(run.presentStoredFields.map(\.1) == present.map(\.1))
            let change = RunChange(run: run, created: true)
            #expect(change.fieldChanges.set.map(\.0) == present.map(\.0) && change.fieldChanges.deleted.isEmpty)
        }
    }

    @Test func nullAndDefaultFieldsAreDeletedNotStored() {
        let run = Fixtures.startedRun().run
        let stored = Dictionary(run.storedFields.map { ($0.0, $0.1) }, uniquingKeysWith: { a, _ in a })
        #expect(run.storedFields.count == stored.count, "no field appears twice")
        #expect(run.storedFields.map(\.0) == Run.storedNames.map(\.short), "every stored name, in order")
        for key in ["ca", "o", "e", "pf", "at", "k", "df", "n", "t", "sa"] {
            #expect(stored[key] != nil, "\(key) is listed, so that it is deleted")
            #expect(stored[key]! == nil, "\(key) is nil or its default for a fresh run")
        }
        #expect(stored["s"]! == "active")
        #expect(stored["vr"]! == #"{"tier":"gold"}"#)
        #expect(stored["a"]! == "1")
    }

    @Test func initFromFieldsNeedsTheRequiredFields() {
        let run = Self.fullRun()
        let good = Self.fields(run)
        #expect(Run(id: run.id, fields: good) != nil)
        #expect(Run(fields: good) == nil, "no id: a layout-2 hash is read with its key's id")
        for key in ["p", "v", "c", "s"] {
            var f = good
            f[key] = nil
            #expect(Run(id: run.id, fields: f) == nil, "without \(key)")
        }
        #expect(Run(id: "not-a-run-id", fields: good) == nil, "no startedAt and none implied by the id")
        var badStatus = good
        badStatus["s"] = "running"
        #expect(Run(id: run.id, fields: badStatus) == nil)
        var badVersion = good
        badVersion["v"] = "v3"
        #expect(Run(id: run.id, fields: badVersion) == nil)
        var badStart = good
        badStart["t0"] = "x"
        #expect(Run(id: run.id, fields: badStart) == nil)
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
