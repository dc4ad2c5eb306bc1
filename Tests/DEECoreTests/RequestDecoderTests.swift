import DEECore
import Testing

private let decoder = RequestDecoder(prefix: "dee")
private let runID = "1795428000000-000003-00007-2"

private func decodeError(_ fields: [(String, String)], decoder: RequestDecoder = decoder) -> DEEError? {
    do throws(DEEError) {
        _ = try decoder.decode(fields)
        return nil
    } catch {
        return error
    }
}

private func expectError(
    _ fields: [(String, String)], code: ErrorCode, field: String?, decoder: RequestDecoder = decoder,
    sourceLocation: SourceLocation = #_sourceLocation
) {
    let error = decodeError(fields, decoder: decoder)
    #expect(error?.code == code, "got \(String(describing: error))", sourceLocation: sourceLocation)
    #expect(error?.field == field, "got \(String(describing: error))", sourceLocation: sourceLocation)
}

private let planText = #"{"id":"welcome","steps":[{"id":"a","type":"action","action":"x"},{"id":"e","type":"end"}]}"#

@Suite("RequestDecoder")
struct RequestDecoderTests {
    // MARK: per-field decoding

    @Test func pauseRunFromFields() throws {
        let env = try decoder.decode([
            ("type", "pauseRun"), ("runId", runID), ("reason", "holiday"), ("replyTo", "ops:replies"),
            ("requestId", "req-1"), ("actor", "ops@example.com"),
        ])
        #expect(env.type == "pauseRun")
        #expect(env.request == .pauseRun(runId: runID, reason: "holiday"))
        #expect(env.replyTo == "ops:replies")
        #expect(env.requestId == "req-1")
        #expect(env.actor == "ops@example.com")
        #expect(env.arguments == ["runId": .string(runID), "reason": "holiday"])
        #expect(!env.request.isReadOnly)
    }

    @Test func stringArgumentsAreTakenVerbatim() throws {
        // A reason that looks like JSON stays a string.
        let env = try decoder.decode([("type", "cancelRun"), ("runId", runID), ("reason", "[1, {\"a\": 2}]")])
        #expect(env.request == .cancelRun(runId: runID, reason: "[1, {\"a\": 2}]"))
    }

    @Test func listRunsStatusAsJSONArrayAndLimitAsJSONNumber() throws {
        let env = try decoder.decode([
            ("type", "listRuns"), ("status", #"["active","waiting"]"#), ("limit", "20"), ("replyTo", "ops:replies"),
        ])
        #expect(env.request == .listRuns(filter: RunFilter(statuses: [.active, .waiting]), limit: 20, offset: 0))
        #expect(env.request.isReadOnly)
    }

    @Test func statusAsBareName() throws {
        let env = try decoder.decode([("type", "listRuns"), ("status", "paused")])
        #expect(env.request == .listRuns(filter: RunFilter(statuses: [.paused]), limit: 50, offset: 0))
        let dup = try decoder.decode([("type", "listRuns"), ("status", #"["paused","paused"]"#)])
        #expect(dup.request == .listRuns(filter: RunFilter(statuses: [.paused]), limit: 50, offset: 0))
    }

    @Test func listRunsTimeWindow() throws {
        let env = try decoder.decode([
            ("type", "listRuns"), ("startedAfter", "2026-11-23T10:00:00.000Z"), ("startedBefore", "1795428060000"),
            ("planId", "welcome"), ("contactId", "c1"), ("offset", "10"),
        ])
        #expect(
            env.request
                == .listRuns(
                    filter: RunFilter(
                        planId: "welcome", contactId: "c1", startedAfter: 1_795_428_000_000,
                        startedBefore: 1_795_428_060_000), limit: 50, offset: 10))
    }

    @Test func executeFromFields() throws {
        let env = try decoder.decode([
            ("type", "execute"), ("plan", planText), ("contact", #"{"id":"contact_123","email":"jane@example.com"}"#),
            ("variables", #"{"tier":"gold","n":2}"#), ("startTick", "5"),
        ])
        guard case .execute(let plan, let contact, let contactId, let variables, let startTick) = env.request else {
            Issue.record("not execute: \(env.request)")
            return
        }
        guard case .inline(let p) = plan else {
            Issue.record("plan not inline")
            return
        }
        #expect(p.id == "welcome")
        #expect(contact == ["id": "contact_123", "email": "jane@example.com"])
        #expect(contactId == "contact_123")
        #expect(variables == ["tier": "gold", "n": 2])
        #expect(startTick == 5)
    }

    @Test func executeByPlanId() throws {
        let env = try decoder.decode([
            ("type", "execute"), ("planId", "welcome"), ("planVersion", "3"), ("contact", #"{"id":"c1"}"#),
        ])
        #expect(
            env.request
                == .execute(plan: .id("welcome", version: 3), contact: ["id": "c1"], contactId: "c1", variables: [:], startTick: nil))
    }

    @Test func booleansAndObjectsAsJSONText() throws {
        let env = try decoder.decode([
            ("type", "actionResult"), ("runId", runID), ("idempotencyKey", "k1"), ("ok", "false"), ("error", "smtp 550"),
            ("data", #"{"messageId":"m-1"}"#),
        ])
        #expect(
            env.request
                == .actionResult(runId: runID, idempotencyKey: "k1", ok: false, error: "smtp 550", data: ["messageId": "m-1"]))
    }

    @Test func signalTargets() throws {
        let byContact = try decoder.decode([("type", "signal"), ("contactId", "c1"), ("name", "replied")])
        #expect(byContact.request == .signal(target: .contact("c1"), name: "replied", data: nil, planId: nil))
        let byRun = try decoder.decode([
            ("type", "signal"), ("runId", runID), ("name", "replied"), ("planId", "welcome"), ("data", #"{"a":1}"#),
        ])
        #expect(byRun.request == .signal(target: .run(runID), name: "replied", data: ["a": 1], planId: "welcome"))
        expectError([("type", "signal"), ("runId", runID), ("contactId", "c1"), ("name", "x")], code: .badRequest, field: "runId")
        expectError([("type", "signal"), ("name", "x")], code: .badRequest, field: "contactId")
        expectError([("type", "signal"), ("contactId", "c1")], code: .badRequest, field: "name")
    }

    @Test func commandsWithoutArguments() throws {
        #expect(try decoder.decode([("type", "stats")]).request == .stats)
        #expect(try decoder.decode([("type", "listPlans")]).request == .listPlans)
        #expect(try decoder.decode([("type", "tick")]).request == .tick(count: 1))
        #expect(try decoder.decode([("type", "tick"), ("count", "5")]).request == .tick(count: 5))
        #expect(try decoder.decode([("type", "getAudit"), ("runId", runID)]).request == .getAudit(runId: runID, limit: 100))
        expectError([("type", "stats"), ("verbose", "1")], code: .badRequest, field: "verbose")
    }

    @Test func everyCommandNameIsKnown() {
        #expect(
            Set(RequestDecoder.commandNames) == [
                "registerPlan", "getPlan", "listPlans", "execute", "bulkExecute", "getRun", "listRuns", "pauseRun",
                "resumeRun", "cancelRun", "bulkCancel", "tick", "signal", "actionResult", "suppress", "unsuppress",
                "getAudit", "verifyAudit", "replay", "stats", "listDeadletters", "redriveDeadletter",
            ])
    }

    @Test func deadLetterCommands() throws {
        #expect(try decoder.decode([("type", "listDeadletters")]).request == .listDeadletters(limit: 50))
        #expect(try decoder.decode([("type", "listDeadletters"), ("limit", "3")]).request == .listDeadletters(limit: 3))
        #expect(
            try decoder.decode([("type", "redriveDeadletter"), ("id", "1700000000000-0")]).request
                == .redriveDeadletter(id: "1700000000000-0"))
        expectError([("type", "redriveDeadletter")], code: .badRequest, field: "id")
        expectError([("type", "redriveDeadletter"), ("id", "x{1}")], code: .badRequest, field: "id")
        expectError([("type", "listDeadletters"), ("limit", "0")], code: .badRequest, field: "limit")
    }

    // MARK: args JSON form

    @Test func argsFormEqualsFieldForm() throws {
        let pairs: [([(String, String)], [(String, String)])] = [
            (
                [("type", "listRuns"), ("status", #"["active","waiting"]"#), ("limit", "20")],
                [("type", "listRuns"), ("args", #"{"limit":20,"status":["active","waiting"]}"#)]
            ),
            (
                [("type", "listRuns"), ("status", "active")],
                [("type", "listRuns"), ("args", #"{"status":"active"}"#)]
            ),
            (
                [("type", "pauseRun"), ("runId", runID), ("reason", "x")],
                [("type", "pauseRun"), ("args", #"{"reason":"x","runId":"\#(runID)"}"#)]
            ),
            (
                [
                    ("type", "execute"), ("plan", planText), ("contact", #"{"email":"j@x.io","id":"c1"}"#),
                    ("variables", #"{"b":1,"a":[true,null]}"#), ("startTick", "7"),
                ],
                [
                    ("type", "execute"),
                    (
                        "args",
                        #"{"startTick":7,"variables":{"a":[true,null],"b":1},"contact":{"id":"c1","email":"j@x.io"},"plan":\#(planText)}"#
                    ),
                ]
            ),
            (
                [("type", "actionResult"), ("runId", runID), ("idempotencyKey", "k"), ("ok", "true")],
                [("type", "actionResult"), ("args", #"{"ok":true,"idempotencyKey":"k","runId":"\#(runID)"}"#)]
            ),
            (
                [("type", "tick"), ("count", "3")],
                [("type", "tick"), ("args", #"{"count":3.0}"#)]
            ),
            (
                [("type", "bulkCancel"), ("filters", #"{"planId":"welcome"}"#), ("reason", "r")],
                [("type", "bulkCancel"), ("args", #"{"filters":{"planId":"welcome"},"reason":"r"}"#)]
            ),
        ]
        for (fieldsForm, argsForm) in pairs {
            let a = try decoder.decode(fieldsForm)
            let b = try decoder.decode(argsForm + [("requestId", "same")])
            #expect(a.request == b.request)
            #expect(a.arguments == b.arguments)
            #expect(a.fingerprint == b.fingerprint, "\(fieldsForm)")
        }
    }

    @Test
    func argsFormEqualsFieldFormForEpochTimes() throws {
        let a = try decoder.decode([("type", "listRuns"), ("startedAfter", "1795428000000")])
        let b = try decoder.decode([("type", "listRuns"), ("args", #"{"startedAfter":1795428000000}"#)])
        #expect(a.request == b.request)
        #expect(a.fingerprint == b.fingerprint)
    }

    @Test func argsNullValuesAreOmitted() throws {
        let a = try decoder.decode([("type", "pauseRun"), ("args", #"{"runId":"\#(runID)","reason":null}"#)])
        #expect(a.request == .pauseRun(runId: runID, reason: nil))
        #expect(a.arguments == ["runId": .string(runID)])
    }

    @Test func fingerprintDistinguishesTypeAndArguments() throws {
        let a = try decoder.decode([("type", "pauseRun"), ("runId", runID)])
        let b = try decoder.decode([("type", "resumeRun"), ("runId", runID)])
        let c = try decoder.decode([("type", "pauseRun"), ("runId", runID), ("reason", "x")])
        let d = try decoder.decode([("type", "pauseRun"), ("runId", runID), ("requestId", "r"), ("actor", "someone")])
        #expect(a.fingerprint != b.fingerprint)
        #expect(a.fingerprint != c.fingerprint)
        #expect(a.fingerprint == d.fingerprint, "envelope fields are not arguments")
    }

    // MARK: errors

    @Test func missingType() {
        expectError([("runId", runID)], code: .badRequest, field: "type")
        expectError([("type", ""), ("runId", runID)], code: .badRequest, field: "type")
        expectError([], code: .badRequest, field: "type")
    }

    @Test func unknownType() {
        let error = decodeError([("type", "launchRockets")])
        #expect(error?.code == .unknownCommand)
        #expect(error?.field == "type")
        #expect(error?.message.contains("launchRockets") == true)
        expectError([("type", "PAUSERUN"), ("runId", runID)], code: .unknownCommand, field: "type")
    }

    @Test func unknownArgument() {
        let error = decodeError([("type", "pauseRun"), ("runId", runID), ("runID", runID)])
        #expect(error?.code == .badRequest)
        #expect(error?.field == "runID")
        #expect(error?.message.contains("runId") == true, "the message lists the arguments")
        expectError([("type", "pauseRun"), ("args", #"{"runId":"\#(runID)","color":"red"}"#)], code: .badRequest, field: "color")
    }

    @Test func badJSON() {
        expectError([("type", "listRuns"), ("limit", "twenty")], code: .badRequest, field: "limit")
        expectError([("type", "listRuns"), ("status", "[active")], code: .badRequest, field: "status")
        expectError([("type", "execute"), ("planId", "p"), ("contact", "{id: c1}")], code: .badRequest, field: "contact")
        expectError([("type", "listRuns"), ("args", "{not json")], code: .badRequest, field: "args")
        expectError([("type", "listRuns"), ("args", "[1,2]")], code: .badRequest, field: "args")
        expectError([("type", "listRuns"), ("args", "")], code: .badRequest, field: "args")
    }

    @Test func wrongJSONTypes() {
        expectError([("type", "listRuns"), ("limit", #""20""#)], code: .badRequest, field: "limit")
        expectError([("type", "listRuns"), ("limit", "2.5")], code: .badRequest, field: "limit")
        expectError([("type", "actionResult"), ("runId", runID), ("idempotencyKey", "k"), ("ok", "1")], code: .badRequest, field: "ok")
        expectError([("type", "execute"), ("planId", "p"), ("contact", #"["c1"]"#)], code: .badRequest, field: "contact")
        expectError([("type", "bulkExecute"), ("planId", "p"), ("contacts", #"{"id":"c1"}"#)], code: .badRequest, field: "contacts")
        expectError([("type", "listRuns"), ("status", "[1]")], code: .badRequest, field: "status")
        expectError([("type", "listRuns"), ("status", "running")], code: .badRequest, field: "status")
        expectError([("type", "listRuns"), ("status", "[]")], code: .badRequest, field: "status")
        expectError([("type", "pauseRun"), ("args", #"{"runId":5}"#)], code: .badRequest, field: "runId")
        expectError([("type", "listRuns"), ("startedAfter", "yesterday")], code: .badRequest, field: "startedAfter")
    }

    @Test func limits() throws {
        #expect(
            try decoder.decode([("type", "listRuns"), ("limit", "1000")]).request
                == .listRuns(filter: RunFilter(), limit: 1000, offset: 0))
        expectError([("type", "listRuns"), ("limit", "1001")], code: .tooLarge, field: "limit")
        expectError([("type", "listRuns"), ("args", #"{"limit":5000}"#)], code: .tooLarge, field: "limit")
        expectError([("type", "listRuns"), ("limit", "0")], code: .badRequest, field: "limit")
        expectError([("type", "listRuns"), ("offset", "-1")], code: .badRequest, field: "offset")
        expectError([("type", "tick"), ("count", "100001")], code: .tooLarge, field: "count")
        #expect(try decoder.decode([("type", "tick"), ("count", "100000")]).request == .tick(count: 100_000))
        expectError([("type", "tick"), ("count", "0")], code: .badRequest, field: "count")

        var small = Limits()
        small.maxContacts = 2
        small.maxEntryBytes = 200
        let strict = RequestDecoder(prefix: "dee", limits: small)
        expectError(
            [("type", "bulkExecute"), ("planId", "p"), ("contacts", #"[{"id":"a"},{"id":"b"},{"id":"c"}]"#)],
            code: .tooLarge, field: "contacts", decoder: strict)
        #expect(
            (try? strict.decode([("type", "bulkExecute"), ("planId", "p"), ("contacts", #"[{"id":"a"},{"id":"b"}]"#)])) != nil)
        expectError(
            [("type", "pauseRun"), ("runId", runID), ("reason", String(repeating: "x", count: 300))],
            code: .tooLarge, field: "args", decoder: strict)
    }

    @Test func replyToInTheEnginesKeySpace() throws {
        for key in ["dee:commands", "dee:{0}:events", "dee:rejected", "dee:replies", "dee:repliesX", "dee:"] {
            expectError([("type", "stats"), ("replyTo", key)], code: .badRequest, field: "replyTo")
        }
        expectError([("type", "stats"), ("replyTo", "")], code: .badRequest, field: "replyTo")
        for key in ["dee:replies:ops", "dee:replies:a:b", "ops:replies", "deex:commands", "other:dee:commands", "replies"] {
            let env = try decoder.decode([("type", "stats"), ("replyTo", key)])
            #expect(env.replyTo == key)
        }
        #expect(decoder.validReplyTo("dee:replies:x"))
        #expect(!decoder.validReplyTo(String(repeating: "k", count: 513)))
        // Another prefix has another key space.
        let other = RequestDecoder(prefix: "acme")
        #expect(other.validReplyTo("dee:commands"))
        #expect(!other.validReplyTo("acme:commands"))
    }

    @Test func contactIdValidation() {
        let error = decodeError([("type", "execute"), ("planId", "welcome"), ("contact", #"{"id":"a:b"}"#)])
        #expect(error?.code == .badRequest)
        #expect(error?.field == "contact.id")
        #expect(error?.message.hasPrefix("contact.id") == true)
        expectError([("type", "execute"), ("planId", "welcome"), ("contact", #"{"id":"{0}"}"#)], code: .badRequest, field: "contact.id")
        expectError([("type", "execute"), ("planId", "welcome"), ("contact", #"{"id":"a b"}"#)], code: .badRequest, field: "contact.id")
        expectError([("type", "execute"), ("planId", "welcome"), ("contact", #"{"email":"x"}"#)], code: .badRequest, field: "contact.id")
        expectError([("type", "execute"), ("planId", "welcome"), ("contact", #"{"id":7}"#)], code: .badRequest, field: "contact.id")
        expectError([("type", "execute"), ("planId", "welcome")], code: .badRequest, field: "contact")
    }

    @Test func otherIdsAreValidated() {
        expectError([("type", "suppress"), ("contactId", "a:b")], code: .badRequest, field: "contactId")
        expectError([("type", "getPlan"), ("planId", "p{1}")], code: .badRequest, field: "planId")
        expectError([("type", "execute"), ("planId", "a b"), ("contact", #"{"id":"c"}"#)], code: .badRequest, field: "planId")
        expectError([("type", "listRuns"), ("contactId", "x:y")], code: .badRequest, field: "contactId")
        expectError([("type", "bulkCancel"), ("filters", #"{"planId":"x:y"}"#), ("reason", "r")], code: .badRequest, field: "filters.planId")
        // A well-formed id that is not a run id of this engine: not_found.
        expectError([("type", "getRun"), ("runId", "run_1")], code: .notFound, field: "runId")
        expectError([("type", "getRun"), ("runId", "x:1")], code: .badRequest, field: "runId")
        expectError([("type", "getRun")], code: .badRequest, field: "runId")
    }

    @Test func envelopeFieldRules() {
        expectError([("type", "pauseRun"), ("runId", runID), ("runId", runID)], code: .badRequest, field: "runId")
        expectError([("type", "pauseRun"), ("args", #"{"runId":"\#(runID)"}"#), ("reason", "x")], code: .badRequest, field: "reason")
        expectError([("type", "stats"), ("requestId", "")], code: .badRequest, field: "requestId")
        expectError([("type", "stats"), ("requestId", String(repeating: "r", count: 129))], code: .badRequest, field: "requestId")
        expectError([("type", "stats"), ("requestId", "a\nb")], code: .badRequest, field: "requestId")
        #expect((try? decoder.decode([("type", "stats"), ("requestId", String(repeating: "r", count: 128))])) != nil)
        expectError([("type", "stats"), ("actor", String(repeating: "a", count: 257))], code: .badRequest, field: "actor")
    }

    @Test func requiredArguments() {
        expectError([("type", "cancelRun"), ("runId", runID)], code: .badRequest, field: "reason")
        expectError([("type", "registerPlan")], code: .badRequest, field: "plan")
        expectError([("type", "execute"), ("contact", #"{"id":"c"}"#)], code: .badRequest, field: "plan")
        expectError(
            [("type", "execute"), ("plan", planText), ("planId", "welcome"), ("contact", #"{"id":"c"}"#)],
            code: .badRequest, field: "planId")
        expectError([("type", "actionResult"), ("runId", runID), ("ok", "true")], code: .badRequest, field: "idempotencyKey")
        expectError([("type", "actionResult"), ("runId", runID), ("idempotencyKey", "k")], code: .badRequest, field: "ok")
        expectError([("type", "bulkCancel"), ("reason", "r")], code: .badRequest, field: "filters")
        expectError([("type", "bulkCancel"), ("filters", "{}"), ("reason", "r")], code: .badRequest, field: "filters")
        expectError([("type", "bulkCancel"), ("filters", #"{"limit":5}"#), ("reason", "r")], code: .badRequest, field: "filters.limit")
        expectError([("type", "bulkCancel"), ("filters", #"{"status":"active"}"#)], code: .badRequest, field: "reason")
        expectError([("type", "bulkCancel"), ("filters", #"{"status":"nope"}"#), ("reason", "r")], code: .badRequest, field: "filters.status")
    }

    @Test func invalidInlinePlanNamesItsPath() {
        let bad = #"{"id":"p","steps":[{"id":"a","type":"action","action":"x","next":"ghost"},{"id":"e","type":"end"}]}"#
        expectError([("type", "registerPlan"), ("plan", bad)], code: .planInvalid, field: "steps[0].next")
        expectError([("type", "execute"), ("plan", bad), ("contact", #"{"id":"c"}"#)], code: .planInvalid, field: "steps[0].next")
    }

    @Test func headerOfAMalformedEntry() {
        let h = decoder.header([("type", "nope"), ("requestId", "r1"), ("replyTo", "ops:r"), ("actor", "me"), ("x", "y")])
        #expect(h.type == "nope" && h.requestId == "r1" && h.replyTo == "ops:r" && h.actor == "me")
        let empty = decoder.header([])
        #expect(empty.type == nil && empty.requestId == nil && empty.replyTo == nil && empty.actor == nil)
    }

    @Test func aFieldGivenTwiceIsNamedInShortAndLongEntries() {
        // The first name that repeats, whether the entry is checked pair by pair (up to 16 fields) or by a set.
        expectError([("type", "getRun"), ("runId", runID), ("runId", runID)], code: .badRequest, field: "runId")
        expectError([("type", "getRun"), ("actor", "a"), ("runId", runID), ("actor", "b")], code: .badRequest, field: "actor")
        var long: [(String, String)] = [("type", "getRun"), ("runId", runID)]
        for k in 0..<20 { long.append(("x\(k)", "v")) }
        long.append(("x3", "again"))
        long.append(("type", "again"))
        expectError(long, code: .badRequest, field: "x3")
    }
}
