import DEECore
import Testing

/// SPEC 6: every number of a plan or a command is a whole number from 0 to 2,147,483,647 unless a narrower
/// range is given, and nothing computed from input traps: tick arithmetic saturates, numbers that are data
/// (params, variables, contacts, branch values) may be anything JSON allows.

private let signer = AuditSigner()
private let decoder = RequestDecoder(prefix: "dee")
private let runID = "1795428000000-000003-00007-0"

/// Numbers at integer boundaries, as JSON text, with the whole number each holds as an `Int` (nil: none; a
/// fraction, past `Int`, or not a number at all).
let boundaryNumbers: [(String, Int?)] = [
    ("-1", -1), ("0", 0), ("-0", 0), ("1", 1), ("1.0", 1), ("2147483647", 2_147_483_647),
    ("2147483648", 2_147_483_648), ("9223372036854775807", Int.max), ("-9223372036854775808", Int.min),
    ("9223372036854775808", nil), ("-9223372036854775809", nil), ("1e308", nil), ("-1e308", nil), ("1.5", nil),
    ("1e-300", nil), (#""3""#, nil), ("true", nil), ("[1]", nil),
]

private func json(_ text: String) -> JSONValue {
    guard let v = JSONValue.parse(text) else { fatalError("not JSON: \(text)") }
    return v
}

private func planError(_ json: JSONValue) -> DEEError? {
    do throws(DEEError) {
        _ = try Plan.parse(json)
        return nil
    } catch {
        return error
    }
}

private func decodeResult(_ fields: [(String, String)]) -> Result<Envelope, DEEError> {
    do throws(DEEError) {
        return .success(try decoder.decode(fields))
    } catch {
        return .failure(error)
    }
}

/// A whole-number argument of a command, its smallest value and its configured limit (too_large above it).
struct NumberArgument: Sendable, CustomTestStringConvertible {
    let type: String
    let name: String
    /// The other arguments the command needs, as JSON text.
    let base: [(String, String)]
    let min: Int
    let limit: Int

    var testDescription: String { "\(type).\(name)" }

    static let all: [NumberArgument] = [
        NumberArgument(type: "tick", name: "count", base: [], min: 1, limit: 100_000),
        NumberArgument(type: "listRuns", name: "limit", base: [], min: 1, limit: 1000),
        NumberArgument(type: "listRuns", name: "offset", base: [], min: 0, limit: WholeNumber.max),
        NumberArgument(
            type: "bulkExecute", name: "batchSize", base: [("planId", #""p""#), ("contacts", "[]")], min: 1, limit: 10_000),
        NumberArgument(
            type: "execute", name: "startTick", base: [("planId", #""p""#), ("contact", #"{"id":"c1"}"#)], min: 0,
            limit: WholeNumber.max),
        NumberArgument(
            type: "execute", name: "planVersion", base: [("planId", #""p""#), ("contact", #"{"id":"c1"}"#)], min: 1,
            limit: WholeNumber.max),
        NumberArgument(type: "getPlan", name: "version", base: [("planId", #""p""#)], min: 1, limit: WholeNumber.max),
        NumberArgument(type: "getAudit", name: "limit", base: [("runId", "\"\(runID)\"")], min: 1, limit: 10_000),
    ]

    /// The error code `n` must get, or nil when it is accepted.
    func expected(_ n: Int?) -> ErrorCode? {
        guard let n, n >= min, n <= WholeNumber.max else { return .badRequest }
        return n > limit ? .tooLarge : nil
    }

    /// The entry as fields: string arguments verbatim, the others as JSON text.
    func fields(_ text: String) -> [(String, String)] {
        let plain = base.map { k, v in (k, JSONValue.parse(v)?.string ?? v) }
        return [("type", type)] + plain + [(name, text)]
    }

    /// The entry with one `args` JSON object.
    func args(_ text: String) -> [(String, String)] {
        let members = (base + [(name, text)]).map { "\"\($0.0)\":\($0.1)" }
        return [("type", type), ("args", "{" + members.joined(separator: ",") + "}")]
    }
}

@Suite("Number bounds")
struct NumberBoundsTests {
    // MARK: plans

    private static func planWith(_ key: String, _ text: String, type: String = "wait") -> JSONValue {
        var step: [String: JSONValue] = ["id": "w", "type": .string(type)]
        switch type {
        case "action": step["action"] = "send"; step["await"] = true; step["timeoutTicks"] = 1
        case "waitForSignal": step["signal"] = "s"
        default: step["ticks"] = 1
        }
        step[key] = json(text)
        return Fixtures.planJSON([["id": "first", "type": "action", "action": "send"], .object(step), ["id": "e", "type": "end"]])
    }

    @Test(arguments: boundaryNumbers)
    func waitTicks(text: String, value: Int?) {
        let error = planError(Self.planWith("ticks", text))
        if let value, value >= 1, value <= 2_147_483_647 {
            #expect(error == nil, "\(text): \(String(describing: error))")
        } else {
            #expect(error?.code == .planInvalid, "\(text)")
            #expect(error?.field == "steps[1].ticks", "\(text): \(String(describing: error))")
        }
    }

    @Test(arguments: ["waitForSignal", "action"], boundaryNumbers)
    func timeoutTicks(type: String, number: (String, Int?)) {
        let error = planError(Self.planWith("timeoutTicks", number.0, type: type))
        if let value = number.1, value >= 1, value <= 2_147_483_647 {
            #expect(error == nil, "\(number.0): \(String(describing: error))")
        } else {
            #expect(error?.code == .planInvalid, "\(number.0)")
            #expect(error?.field == "steps[1].timeoutTicks", "\(number.0): \(String(describing: error))")
        }
    }

    @Test(arguments: boundaryNumbers)
    func retries(text: String, value: Int?) {
        let error = planError(Self.planWith("retries", text, type: "action"))
        if let value, value >= 0, value <= 100 {
            #expect(error == nil, "\(text): \(String(describing: error))")
        } else {
            #expect(error?.code == .planInvalid, "\(text)")
            #expect(error?.field == "steps[1].retries", "\(text): \(String(describing: error))")
        }
    }

    @Test(arguments: boundaryNumbers)
    func planVersionField(text: String, value: Int?) {
        var o = Fixtures.linearJSON.object!
        o["version"] = json(text)
        let error = planError(.object(o))
        if let value, value >= 0, value <= 2_147_483_647 {
            #expect(error == nil, "\(text): \(String(describing: error))")
        } else {
            #expect(error?.code == .planInvalid && error?.field == "version", "\(text): \(String(describing: error))")
        }
    }

    @Test func theBugReportsPlanIsRejectedNamingItsPath() {
        let text = #"{"id":"p","steps":[{"id":"a","type":"action","action":"x"},{"id":"w","type":"wait","ticks":9223372036854775807},{"id":"e","type":"end"}]}"#
        let error = planError(json(text))
        #expect(error?.code == .planInvalid)
        #expect(error?.field == "steps[1].ticks")
        #expect(error?.message.contains("2147483647") == true, "\(String(describing: error))")
    }

    @Test func numbersThatAreDataAreNotBounded() throws {
        // params and branch values are data: any JSON number, huge or fractional.
        let text = #"""
            {"id":"p","steps":[
              {"id":"a","type":"action","action":"x","params":{"n":9223372036854775808,"m":-1e308,"k":1.5}},
              {"id":"b","type":"branch","cases":[{"when":{"var":"n","op":"gt","value":1e308},"next":"e"},
                {"when":{"var":"n","op":"in","value":[9223372036854775807,-9223372036854775808]},"next":"e"}],
               "default":"e"},
              {"id":"e","type":"end"}]}
            """#
        let plan = try Plan.parse(json(text))
        #expect(plan.steps.count == 3)
    }

    // MARK: requests

    @Test(arguments: NumberArgument.all, boundaryNumbers)
    func wholeNumberArguments(argument: NumberArgument, number: (String, Int?)) {
        let (text, value) = number
        let want = argument.expected(value)
        // A JSON string is a string argument's form, not a number's: in the field form "3" is the number 3.
        let forms: [(String, [(String, String)], ErrorCode?)] = [
            ("args", argument.args(text), want),
            ("fields", argument.fields(text), want),
        ]
        for (form, fields, expected) in forms {
            switch decodeResult(fields) {
            case .success(let envelope):
                #expect(expected == nil, "\(form) \(text): accepted, wanted \(String(describing: expected))")
                #expect(envelope.arguments[argument.name] == value.map(JSONValue.int), "\(form) \(text)")
            case .failure(let error):
                #expect(error.code == expected, "\(form) \(text): \(error)")
                #expect(error.field == argument.name, "\(form) \(text): \(error)")
            }
        }
    }

    @Test func aNumberInAStringFieldIsTheNumber() throws {
        // Field form: the text is JSON, so "3" is 3 and "\"3\"" a string.
        let env = try decoder.decode([("type", "tick"), ("count", "3")])
        #expect(env.request == .tick(count: 3))
        let error = decodeResult([("type", "tick"), ("count", #""3""#)])
        guard case .failure(let e) = error else { Issue.record("accepted a string count"); return }
        #expect(e.code == .badRequest && e.field == "count")
    }

    @Test func hugeDigitStringsAreRejectedNotTrapped() {
        for text in [String(repeating: "9", count: 400), String(repeating: "9", count: 100_000), "1e400", "-1e400"] {
            for fields in [[("type", "tick"), ("count", text)], [("type", "tick"), ("args", "{\"count\":\(text)}")]] {
                guard case .failure(let e) = decodeResult(fields) else {
                    Issue.record("accepted \(text.prefix(20))")
                    continue
                }
                #expect(e.code == .badRequest, "\(e)")
                #expect(e.field == "count" || e.field == "args", "\(e)")
                #expect(e.message.utf8.count < 300, "the message quotes a bounded part of the input")
            }
        }
    }

    @Test(arguments: [
        ("8640000000000000", true), ("-8640000000000000", true), ("8640000000000001", false),
        ("9223372036854775807", false), ("-9223372036854775808", false), ("1e300", false), ("1.5", false),
        ("1795428000000", true), (#""2026-11-23T10:00:00.000Z""#, true),
    ])
    func epochMillisecondFilters(text: String, ok: Bool) {
        for key in ["startedAfter", "startedBefore"] {
            let result = decodeResult([("type", "listRuns"), ("args", "{\"\(key)\":\(text)}")])
            switch result {
            case .success: #expect(ok, "\(key) \(text) accepted")
            case .failure(let e):
                #expect(!ok, "\(key) \(text): \(e)")
                #expect(e.code == .badRequest && e.field == key, "\(e)")
            }
            let cancel = decodeResult([
                ("type", "bulkCancel"), ("args", "{\"filters\":{\"\(key)\":\(text)},\"reason\":\"r\"}"),
            ])
            if case .failure(let e) = cancel {
                #expect(!ok, "\(key) \(text): \(e)")
                #expect(e.code == .badRequest && e.field == "filters.\(key)", "\(e)")
            } else {
                #expect(ok, "filters.\(key) \(text) accepted")
            }
        }
    }

    // MARK: JSON numbers

    @Test func jsonNumbersAtTheEdges() {
        #expect(JSONValue.parse("-0") == .int(0))
        #expect(JSONValue.parse("1.0")?.int == 1)
        #expect(JSONValue.parse("2147483648") == .int(2_147_483_648))
        #expect(JSONValue.parse("9223372036854775807") == .int(Int.max))
        #expect(JSONValue.parse("-9223372036854775808") == .int(Int.min))
        #expect(JSONValue.parse("9223372036854775808") == .double(9_223_372_036_854_775_808.0))
        #expect(JSONValue.parse("9223372036854775808")?.int == nil)
        #expect(JSONValue.parse("1e308") == .double(1e308))
        #expect(JSONValue.parse("1e308")?.int == nil)
        #expect(JSONValue.parse("1e400") == nil, "not finite: refused, like other JSON we cannot hold")
        #expect(JSONValue.parse("-1e400") == nil)
        #expect(JSONValue.parse(String(repeating: "9", count: 100_000)) == nil)
        #expect(JSONValue.parse("1" + String(repeating: "0", count: 300))?.int == nil)
        for bad in ["-", "1e", "1.", ".5", "01", "+1", "1e+", "--1", "0x10", "NaN", "Infinity"] {
            #expect(JSONValue.parse(bad) == nil, "\(bad)")
        }
        // Printing never traps either.
        for v: JSONValue in [.int(Int.min), .int(Int.max), .double(-0.0), .double(1e308), .double(-1e308),
                             .double(9.0e15), .double(.nan), .double(.infinity), .double(.leastNonzeroMagnitude)] {
            #expect(!v.canonical.isEmpty)
            _ = v.int
            _ = v.number
        }
        #expect(JSONValue.double(-0.0).canonical == "0")
    }

    // MARK: saturating ticks

    @Test(arguments: [
        (0, 1, 1), (Int.max, 1, Int.max), (Int.max - 1, 1, Int.max), (Int.max - 5, 2_147_483_647, Int.max),
        (2_147_483_647, 2_147_483_647, 4_294_967_294), (Int.min, -1, Int.min), (5, -3, 2), (Int.max, Int.max, Int.max),
    ])
    func tickAfterSaturates(t: Int, n: Int, sum: Int) {
        #expect(Tick.after(t, n) == sum)
    }

    @Test func aHugeWakeTickIsClampedAndTickingNearIntMaxDoesNotTrap() throws {
        // [wait 2147483647, end]: started near the top of Int, the wake tick is past it and clamped.
        let plan = try Plan.parse(
            Fixtures.planJSON([["id": "w", "type": "wait", "ticks": 2_147_483_647], ["id": "e", "type": "end"]]))
        let start = Int.max - 10
        let started = Transitions.start(
            runId: "r1", plan: plan, version: 1, contact: ["id": "c1"], contactId: "c1", variables: [:],
            startTick: nil, context: Fixtures.context(clock: start), signer: signer)
        #expect(started.run.due == start + 1)
        let waiting = try #require(
            Stepper.tick(run: started.run, plan: plan, context: Fixtures.context(clock: start + 1), signer: signer))
        #expect(waiting.run.status == .waiting)
        #expect(waiting.run.due == Tick.max, "start + 1 + 2147483647 is past Int.max: clamped")
        for clock in [start + 2, Int.max - 1] {
            #expect(Stepper.tick(run: waiting.run, plan: plan, context: Fixtures.context(clock: clock), signer: signer) == nil)
        }
        // Only a clock of Int.max itself reaches it, and even that steps without trapping.
        let done = try #require(
            Stepper.tick(run: waiting.run, plan: plan, context: Fixtures.context(clock: Int.max), signer: signer))
        #expect(done.run.status == .completed)
        #expect(done.run.currentTick == Int.max)
    }

    @Test func everyStepKindAtTheLargestClock() throws {
        let text = #"""
            {"id":"p","steps":[
              {"id":"a","type":"action","action":"x","await":true,"timeoutTicks":2147483647,"retries":100},
              {"id":"b","type":"branch","cases":[{"when":{"var":"n","op":"gte","value":1},"next":"s"}],"default":"s"},
              {"id":"s","type":"waitForSignal","signal":"go","timeoutTicks":2147483647},
              {"id":"w","type":"wait","ticks":2147483647},
              {"id":"e","type":"end"}]}
            """#
        let plan = try Plan.parse(json(text))
        let top = Int.max
        var run = Transitions.start(
            runId: "r1", plan: plan, version: 1, contact: ["id": "c1"], contactId: "c1", variables: ["n": 5],
            startTick: nil, context: Fixtures.context(clock: top), signer: signer
        ).run
        #expect(run.due == top)
        // The awaited action: dispatched, then its result fails it (retry due "next tick", clamped), then ok.
        run = try #require(Stepper.tick(run: run, plan: plan, context: Fixtures.context(clock: top), signer: signer)).run
        #expect(run.status == .waiting && run.due == top)
        let key = try #require(run.awaitKey)
        run = try #require(
            Stepper.actionResult(
                run: run, plan: plan, key: key, ok: false, error: "no", data: nil, context: Fixtures.context(clock: top),
                signer: signer)
        ).run
        #expect(run.status == .active && run.due == top && run.attempt == 2)
        run = try #require(Stepper.tick(run: run, plan: plan, context: Fixtures.context(clock: top), signer: signer)).run
        let key2 = try #require(run.awaitKey)
        run = try #require(
            Stepper.actionResult(
                run: run, plan: plan, key: key2, ok: true, error: nil, data: ["n": 9_223_372_036_854_775_807],
                context: Fixtures.context(clock: top), signer: signer)
        ).run
        #expect(run.currentStep == "b" && run.due == top)
        run = try #require(Stepper.tick(run: run, plan: plan, context: Fixtures.context(clock: top), signer: signer)).run
        #expect(run.currentStep == "s")
        run = try #require(Stepper.tick(run: run, plan: plan, context: Fixtures.context(clock: top), signer: signer)).run
        #expect(run.status == .waiting && run.due == top)
        // Paused and resumed at the top: the timer that passed is due "next tick", clamped.
        run = try Transitions.pause(run: run, reason: nil, context: Fixtures.context(clock: top), signer: signer).run
        run = try Transitions.resume(run: run, context: Fixtures.context(clock: top), signer: signer).run
        #expect(run.due == top)
        run = try #require(
            Stepper.signal(
                run: run, plan: plan, name: "go", data: nil, context: Fixtures.context(clock: top), signer: signer)
        ).run
        #expect(run.currentStep == "w" && run.due == top)
        run = try #require(Stepper.tick(run: run, plan: plan, context: Fixtures.context(clock: top), signer: signer)).run
        #expect(run.status == .waiting && run.due == top)
        run = try #require(Stepper.tick(run: run, plan: plan, context: Fixtures.context(clock: top), signer: signer)).run
        #expect(run.status == .completed)
    }

    @Test func aStoredRunWithHugeCountersDoesNotTrap() throws {
        let plan = Fixtures.plan(Fixtures.linearJSON)
        var fields = Dictionary(
            uniqueKeysWithValues: Fixtures.startedRun().run.storedFields.compactMap { k, v in v.map { (k, $0) } })
        fields["n"] = String(Int.max)
        fields["a"] = String(Int.max)
        fields["d"] = String(Int.max - 1)
        fields["t"] = String(Int.max - 1)
        let run = try #require(Run(id: Fixtures.startedRun().run.id, fields: fields))
        let change = try #require(
            Stepper.tick(run: run, plan: plan, context: Fixtures.context(clock: Int.max - 1), signer: signer))
        #expect(change.run.stepsCompleted == Int.max)
        #expect(change.run.auditCount == Int.max)
        #expect(change.run.due == Int.max)
        #expect(change.actions.count == 1)
        _ = change.fieldChanges
    }

    @Test func timestampsAtTheEdgesOfTheirTypes() {
        #expect(!Timestamp.iso(Int64.min).isEmpty)
        #expect(!Timestamp.iso(Int64.max).isEmpty)
        #expect(Timestamp.iso(-1) == "1969-12-31T23:59:59.999Z")
        #expect(Timestamp.iso(-86_400_000) == "1969-12-31T00:00:00.000Z")
        // An entry id past Int64 milliseconds (Redis allows up to 2^64 - 1) is clamped, not trapped on.
        let ctx = ChangeContext(
            commandId: EntryID(ms: UInt64.max, seq: UInt64.max), requestId: "r", actor: nil, clock: 0)
        #expect(ctx.at == Int64.max)
        #expect(!RunID.make(entry: ctx.commandId, index: 0, partition: 0).isEmpty)
    }

    // MARK: numbers that are data

    private static func condition(_ op: String, _ value: String) throws -> Condition {
        let plan = try Plan.parse(json(
            #"{"id":"p","steps":[{"id":"b","type":"branch","cases":[{"when":{"var":"n","op":""# + op
                + #"","value":"# + value + #"},"next":"e"}]},{"id":"e","type":"end"}]}"#))
        guard case .branch(let cases, _) = plan.entry.kind else { fatalError("not a branch") }
        return cases[0].when
    }

    @Test(arguments: [
        ("9223372036854775807", "gt", "9223372036854775806", true),
        ("9223372036854775806", "lt", "9223372036854775807", true),
        ("9223372036854775807", "eq", "9223372036854775806", false),
        ("9223372036854775807", "ne", "9223372036854775806", true),
        ("9223372036854775807", "lt", "9223372036854775808", true),
        ("9223372036854775807", "eq", "9223372036854775808", false),
        ("-9223372036854775808", "gt", "-1e308", true),
        ("-9223372036854775808", "gte", "-9223372036854775808", true),
        ("1e308", "gt", "9223372036854775807", true),
        ("9007199254740993", "gt", "9007199254740992.0", true),
        ("9007199254740993", "eq", "9007199254740992.0", false),
        ("1", "eq", "1.0", true),
        ("1", "lt", "1.5", true),
        ("2", "gt", "1.5", true),
        ("-1", "lt", "-0.5", true),
        ("0", "eq", "-0", true),
        ("1.5", "gte", "1.5", true),
        ("9223372036854775807", "in", "[1, 9223372036854775807]", true),
        ("9223372036854775807", "in", "[9223372036854775806]", false),
        ("1", "in", "[1.0]", true),
    ])
    func numericBranchOpsAreExact(variable: String, op: String, value: String, result: Bool) throws {
        let c = try Self.condition(op, value)
        let outcome = Condition.evaluate(c, contact: [:], variables: ["n": json(variable)])
        #expect(outcome == .success(result), "\(variable) \(op) \(value)")
    }

    @Test func mismatchedTypesStillFailTheRun() throws {
        let c = try Self.condition("gt", "9223372036854775808")
        guard case .failure = Condition.evaluate(c, contact: [:], variables: ["n": "big"]) else {
            Issue.record("a string compared with a number must fail")
            return
        }
    }

    @Test func templatesFillHugeNumbers() throws {
        let variables: [String: JSONValue] = [
            "max": .int(Int.max), "min": .int(Int.min), "big": json("9223372036854775808"), "tiny": .double(.leastNonzeroMagnitude),
            "top": .double(1e308),
        ]
        for name in variables.keys.sorted() {
            let whole = try Template.fill(.string("{{vars.\(name)}}"), contact: [:], variables: variables, path: "p")
            #expect(whole == variables[name], "a whole-string placeholder keeps the number")
            let inside = try Template.fill(.string("n={{vars.\(name)}}!"), contact: [:], variables: variables, path: "p")
            #expect(inside.string?.hasPrefix("n=") == true)
            let unicode = try Template.fill(.string("é {{ vars.\(name) }}"), contact: [:], variables: variables, path: "p")
            #expect(unicode.string?.hasPrefix("é ") == true)
        }
    }
}

/// Validation is linear in a plan's size: a fixed-point loop over the steps was cubic (fuzzing found a 2,000-step
/// plan that took 8 s), which a producer could use to stall the router.
@Suite struct LargePlanTests {
    static func linear(_ n: Int, loopAt: Int? = nil) -> JSONValue {
        var steps: [JSONValue] = (0..<n - 1).map { i in
            var step: [String: JSONValue] = ["id": .string("s\(i)"), "type": "wait", "ticks": 1]
            if i == loopAt { step["next"] = "s0" }
            return .object(step)
        }
        steps.append(["id": .string("s\(n - 1)"), "type": "end", "outcome": "done"])
        return ["id": "big", "steps": .array(steps)]
    }

    @Test(.timeLimit(.minutes(1))) func aTenThousandStepPlanValidates() throws {
        let plan = try Plan.parse(Self.linear(10_000))
        #expect(plan.stepsRemaining(from: "s0") == 10_000)
        #expect(plan.stepsRemaining(from: "s9998") == 2)
    }

    @Test(.timeLimit(.minutes(1))) func aLoopDeepInALargePlanIsFound() {
        #expect(throws: DEEError.self) { try Plan.parse(Self.linear(10_000, loopAt: 9_000)) }
    }
}
