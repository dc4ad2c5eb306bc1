import DEECore
import Testing

/// The `plan_invalid` error Plan.parse throws for `json`, or nil when the plan is valid.
private func planError(_ json: JSONValue) -> DEEError? {
    do throws(DEEError) {
        _ = try Plan.parse(json)
        return nil
    } catch {
        return error
    }
}

private func expectInvalid(
    _ json: JSONValue, field: String, containing fragment: String? = nil, sourceLocation: SourceLocation = #_sourceLocation
) {
    let error = planError(json)
    #expect(error?.code == .planInvalid, "expected plan_invalid, got \(String(describing: error))", sourceLocation: sourceLocation)
    #expect(error?.field == field, "message: \(error?.message ?? "none")", sourceLocation: sourceLocation)
    if let fragment {
        #expect(error?.message.contains(fragment) == true, "message: \(error?.message ?? "none")", sourceLocation: sourceLocation)
    }
    if let error, let field = error.field {
        #expect(error.message.hasPrefix(field), "the message names the path", sourceLocation: sourceLocation)
    }
}

private let end: JSONValue = ["id": "e", "type": "end"]

@Suite("Plan parsing")
struct PlanParsingTests {
    @Test func specExamplePlanParses() throws {
        let plan = try Plan.parse(Fixtures.welcomeJSON)
        #expect(plan.id == "welcome")
        #expect(plan.name == "Welcome sequence")
        #expect(plan.exitOn == ["unsubscribed"])
        #expect(plan.steps.map(\.id) == ["intro", "pause", "nudge", "listen", "won", "lost"])
        #expect(plan.entry.id == "intro")
        #expect(plan.warnings.isEmpty)
        #expect(plan.step("nudge")?.typeName == "action")
        #expect(plan.step("missing") == nil)
        let listen = try #require(plan.step("listen"))
        #expect(listen.kind == .waitForSignal(signal: "replied", timeoutTicks: 5, onSignal: "won", onTimeout: "lost"))
        #expect(plan.step("won")?.kind == .end(outcome: "replied"))
        let intro = try #require(plan.step("intro"))
        guard case .action(let name, let params, let awaited, let timeout, let retries, let onFailure) = intro.kind else {
            Issue.record("intro is not an action: \(intro.kind)")
            return
        }
        #expect(name == "send_email")
        #expect(params == ["template": "intro", "to": "{{contact.email}}"])
        #expect(awaited == false && timeout == nil && retries == 0 && onFailure == nil)
        #expect(intro.next == "pause")
    }

    @Test func defaultsAreFilledIn() throws {
        let plan = try Plan.parse(
            Fixtures.planJSON([
                ["id": "a", "type": "action", "action": "x"],
                ["id": "s", "type": "waitForSignal", "signal": "go"],
                ["id": "e", "type": "end"],
            ]))
        #expect(plan.name == "p", "name defaults to the id")
        #expect(plan.exitOn.isEmpty)
        #expect(plan.step("a")?.next == "s", "next defaults to the following step")
        #expect(plan.step("s")?.kind == .waitForSignal(signal: "go", timeoutTicks: nil, onSignal: "e", onTimeout: "e"))
        #expect(plan.step("e")?.kind == .end(outcome: "completed"))
        #expect(plan.step("e")?.next == nil, "an end step has no next")
        guard case .action(_, let params, _, _, _, _)? = plan.step("a")?.kind else {
            Issue.record("not an action")
            return
        }
        #expect(params == .object([:]))
    }

    @Test func explicitNextOverridesTheFollowingStep() throws {
        let plan = try Plan.parse(
            Fixtures.planJSON([
                ["id": "a", "type": "action", "action": "x", "next": "e"],
                ["id": "b", "type": "wait", "ticks": 1],
                ["id": "e", "type": "end"],
            ]))
        #expect(plan.step("a")?.next == "e")
        #expect(plan.stepsRemaining(from: "a") == 2)
        #expect(plan.stepsRemaining(from: "b") == 2)
    }

    @Test func awaitedActionWithRetriesAndOnFailure() throws {
        let plan = try Plan.parse(
            Fixtures.planJSON([
                [
                    "id": "a", "type": "action", "action": "charge", "await": true, "timeoutTicks": 4, "retries": 2,
                    "onFailure": "bad",
                ],
                ["id": "ok", "type": "end"],
                ["id": "bad", "type": "end", "outcome": "failed_charge"],
            ]))
        #expect(
            plan.step("a")?.kind
                == .action(name: "charge", params: .object([:]), await: true, timeoutTicks: 4, retries: 2, onFailure: "bad"))
        #expect(plan.step("a")?.successors == ["ok", "bad"])
        #expect(plan.step("a")?.defaultSuccessor == "ok")
    }

    @Test func exitOnSignalAlsoAwaitedWarns() throws {
        let plan = try Plan.parse([
            "id": "p", "exitOn": ["replied"],
            "steps": [["id": "l", "type": "waitForSignal", "signal": "replied"], end],
        ])
        #expect(plan.warnings.count == 1)
        #expect(plan.warnings.first?.hasPrefix("steps[0].signal") == true)
    }

    // MARK: stepsRemaining

    @Test func stepsRemainingFollowsTheDefaultPath() throws {
        let plan = try Plan.parse(Fixtures.welcomeJSON)
        // intro → pause → nudge → listen → lost (onTimeout is the default path)
        #expect(plan.stepsRemaining(from: "intro") == 5)
        #expect(plan.stepsRemaining(from: "pause") == 4)
        #expect(plan.stepsRemaining(from: "nudge") == 3)
        #expect(plan.stepsRemaining(from: "listen") == 2)
        #expect(plan.stepsRemaining(from: "won") == 1)
        #expect(plan.stepsRemaining(from: "lost") == 1)
        #expect(plan.stepsRemaining(from: nil) == 0)
        #expect(plan.stepsRemaining(from: "nope") == 0)
    }

    @Test func stepsRemainingOfALinearPlanIsItsLength() throws {
        let plan = try Plan.parse(Fixtures.linearJSON)
        #expect(plan.steps.map { plan.stepsRemaining(from: $0.id) } == [4, 3, 2, 1])
    }

    @Test func branchDefaultPathUsesDefaultElseFirstCase() throws {
        let withDefault = try Plan.parse(
            Fixtures.planJSON([
                [
                    "id": "b", "type": "branch",
                    "cases": [["when": ["var": "tier", "op": "eq", "value": "gold"], "next": "long"]],
                    "default": "e",
                ],
                ["id": "long", "type": "wait", "ticks": 1],
                ["id": "e", "type": "end"],
            ]))
        #expect(withDefault.stepsRemaining(from: "b") == 2)
        #expect(withDefault.step("b")?.defaultSuccessor == "e")

        let firstCase = try Plan.parse(
            Fixtures.planJSON([
                [
                    "id": "b", "type": "branch",
                    "cases": [
                        ["when": ["var": "tier", "op": "eq", "value": "gold"], "next": "long"],
                        ["when": ["var": "tier", "op": "exists"], "next": "e"],
                    ],
                ],
                ["id": "long", "type": "wait", "ticks": 1],
                ["id": "e", "type": "end"],
            ]))
        #expect(firstCase.stepsRemaining(from: "b") == 3)
        #expect(firstCase.step("b")?.successors == ["long", "e"])
    }

    @Test func waitForSignalWithoutOnTimeoutFollowsOnSignalOrNext() throws {
        let plan = try Plan.parse(
            Fixtures.planJSON([
                ["id": "l", "type": "waitForSignal", "signal": "s", "onSignal": "e"],
                ["id": "w", "type": "wait", "ticks": 2],
                ["id": "e", "type": "end"],
            ]))
        // onTimeout defaults to next (w): the default path is l → w → e.
        #expect(plan.step("l")?.kind == .waitForSignal(signal: "s", timeoutTicks: nil, onSignal: "e", onTimeout: "w"))
        #expect(plan.stepsRemaining(from: "l") == 3)
    }

    // MARK: content hash

    @Test func contentHashIsStableUnderKeyOrder() throws {
        let a = """
            {"id":"p","name":"N","steps":[{"id":"a","type":"action","action":"x","params":{"b":1,"a":[1,2]}},\
            {"id":"e","type":"end","outcome":"done"}]}
            """
        let b = """
            { "steps": [ {"params": {"a": [1, 2], "b": 1}, "action": "x", "type": "action", "id": "a"},
              {"outcome": "done", "type": "end", "id": "e"} ], "name": "N", "id": "p" }
            """
        let pa = try Plan.parse(try #require(JSONValue.parse(a)))
        let pb = try Plan.parse(try #require(JSONValue.parse(b)))
        #expect(pa.contentHash == pb.contentHash)
        #expect(pa.canonicalJSON == pb.canonicalJSON)
        #expect(pa.contentHash.count == 64)
        #expect(pa.contentHash.allSatisfy { "0123456789abcdef".contains($0) })
        #expect(pa.contentHash == Hex.sha256(pa.canonicalJSON))
        #expect(pa == pb)
    }

    @Test func contentHashChangesWithContent() throws {
        let p1 = try Plan.parse(Fixtures.linearJSON)
        guard case .object(var o) = Fixtures.linearJSON else { return }
        o["name"] = "renamed"
        let p2 = try Plan.parse(.object(o))
        #expect(p1.contentHash != p2.contentHash)
        #expect(try Plan.parse(Fixtures.linearJSON).contentHash == p1.contentHash, "parsing is deterministic")
    }

    // MARK: validation errors

    @Test func unknownStepReferencesNameTheirPath() {
        expectInvalid(
            Fixtures.planJSON([["id": "a", "type": "action", "action": "x", "next": "nope"], end]),
            field: "steps[0].next", containing: "nope")
        expectInvalid(
            Fixtures.planJSON([
                ["id": "a", "type": "action", "action": "x"],
                ["id": "w", "type": "wait", "ticks": 1],
                ["id": "l", "type": "waitForSignal", "signal": "s", "onSignal": "e", "onTimeout": "ghost"],
                end,
            ]),
            field: "steps[2].onTimeout", containing: "ghost")
        expectInvalid(
            Fixtures.planJSON([["id": "l", "type": "waitForSignal", "signal": "s", "onSignal": "ghost"], end]),
            field: "steps[0].onSignal")
        expectInvalid(
            Fixtures.planJSON([["id": "a", "type": "action", "action": "x", "onFailure": "ghost"], end]),
            field: "steps[0].onFailure")
        expectInvalid(
            Fixtures.planJSON([
                ["id": "b", "type": "branch", "cases": [["when": ["var": "v", "op": "exists"], "next": "ghost"]]], end,
            ]),
            field: "steps[0].cases[0].next")
        expectInvalid(
            Fixtures.planJSON([["id": "b", "type": "branch", "cases": [], "default": "ghost"], end]),
            field: "steps[0].default")
        expectInvalid(
            Fixtures.planJSON([["id": "a", "type": "action", "action": "x", "next": 3], end]),
            field: "steps[0].next", containing: "step id")
    }

    @Test func duplicateStepIds() {
        expectInvalid(
            Fixtures.planJSON([
                ["id": "a", "type": "action", "action": "x"],
                ["id": "a", "type": "wait", "ticks": 1],
                end,
            ]),
            field: "steps[1].id", containing: "duplicate")
    }

    @Test func noEndReachable() {
        // w1 ⇄ w2 never reach e.
        expectInvalid(
            Fixtures.planJSON([
                ["id": "w1", "type": "wait", "ticks": 1, "next": "w2"],
                ["id": "w2", "type": "wait", "ticks": 1, "next": "w1"],
                end,
            ]),
            field: "steps[0]", containing: "no end step is reachable")
        // A step after the end that loops on itself.
        expectInvalid(
            Fixtures.planJSON([end, ["id": "x", "type": "wait", "ticks": 1, "next": "x"]]),
            field: "steps[1]", containing: "no end step is reachable")
        // The last step is an action with no following step.
        expectInvalid(
            Fixtures.planJSON([["id": "a", "type": "action", "action": "x"]]), field: "steps[0].next")
        expectInvalid(Fixtures.planJSON([["id": "w", "type": "wait", "ticks": 2]]), field: "steps[0].next")
        expectInvalid(
            Fixtures.planJSON([["id": "l", "type": "waitForSignal", "signal": "s"]]), field: "steps[0].onSignal")
    }

    @Test func loopOnTheDefaultPath() {
        // The end is reachable through onSignal, but the default path (onTimeout) loops back to a.
        expectInvalid(
            Fixtures.planJSON([
                ["id": "a", "type": "action", "action": "x"],
                ["id": "l", "type": "waitForSignal", "signal": "s", "timeoutTicks": 2, "onSignal": "e", "onTimeout": "a"],
                end,
            ]),
            field: "steps[0]", containing: "loops")
        // A branch whose default goes back; a case reaches the end.
        expectInvalid(
            Fixtures.planJSON([
                ["id": "w", "type": "wait", "ticks": 1],
                [
                    "id": "b", "type": "branch", "cases": [["when": ["var": "done", "op": "exists"], "next": "e"]],
                    "default": "w",
                ],
                end,
            ]),
            field: "steps[0]", containing: "loops")
        // An action whose onFailure leads to the end but whose next loops.
        expectInvalid(
            Fixtures.planJSON([
                ["id": "a", "type": "action", "action": "x", "next": "a", "onFailure": "e"],
                end,
            ]),
            field: "steps[0]", containing: "loops")
    }

    @Test func loopOffTheDefaultPathIsAllowed() throws {
        // A retry loop via onSignal is fine: the default path (onTimeout) ends.
        let plan = try Plan.parse(
            Fixtures.planJSON([
                ["id": "a", "type": "action", "action": "x"],
                ["id": "l", "type": "waitForSignal", "signal": "s", "timeoutTicks": 2, "onSignal": "a", "onTimeout": "e"],
                end,
            ]))
        #expect(plan.stepsRemaining(from: "a") == 3)
    }

    @Test func awaitedActionNeedsTimeoutTicks() {
        expectInvalid(
            Fixtures.planJSON([["id": "a", "type": "action", "action": "x", "await": true], end]),
            field: "steps[0].timeoutTicks", containing: "required")
        expectInvalid(
            Fixtures.planJSON([["id": "a", "type": "action", "action": "x", "await": true, "timeoutTicks": 0], end]),
            field: "steps[0].timeoutTicks")
        #expect(planError(Fixtures.planJSON([["id": "a", "type": "action", "action": "x", "await": false], end])) == nil)
    }

    @Test func badIds() {
        expectInvalid(["id": "bad id", "steps": [end]], field: "id")
        expectInvalid(["id": "a:b", "steps": [end]], field: "id")
        expectInvalid(["id": "{p}", "steps": [end]], field: "id")
        expectInvalid(["id": "", "steps": [end]], field: "id")
        expectInvalid(["id": .string(String(repeating: "x", count: 129)), "steps": [end]], field: "id")
        #expect(planError(["id": .string(String(repeating: "x", count: 128)), "steps": [end]]) == nil)
        expectInvalid(["steps": [end]], field: "id")
        expectInvalid(["id": 7, "steps": [end]], field: "id")
        expectInvalid(Fixtures.planJSON([["id": "x:y", "type": "end"]]), field: "steps[0].id")
        expectInvalid(Fixtures.planJSON([end, ["id": "has space", "type": "end"]]), field: "steps[1].id")
        expectInvalid(Fixtures.planJSON([["type": "end"]]), field: "steps[0].id")
        expectInvalid(["id": "p", "exitOn": ["ok", "not ok"], "steps": [end]], field: "exitOn[1]")
        expectInvalid(
            Fixtures.planJSON([["id": "l", "type": "waitForSignal", "signal": "a{b}"], end]), field: "steps[0].signal")
    }

    @Test func wrongTypes() {
        expectInvalid("not an object", field: "plan")
        expectInvalid(["id": "p", "name": 5, "steps": [end]], field: "name")
        expectInvalid(["id": "p", "exitOn": "x", "steps": [end]], field: "exitOn")
        expectInvalid(["id": "p"], field: "steps")
        expectInvalid(["id": "p", "steps": ["id": "e"]], field: "steps")
        expectInvalid(["id": "p", "steps": []], field: "steps", containing: "at least one")
        expectInvalid(["id": "p", "steps": [end], "owner": "me"], field: "owner")
        expectInvalid(Fixtures.planJSON(["e"]), field: "steps[0]")
        expectInvalid(Fixtures.planJSON([["id": "e"]]), field: "steps[0].type")
        expectInvalid(Fixtures.planJSON([["id": "e", "type": "sleep"]]), field: "steps[0].type", containing: "sleep")
        expectInvalid(Fixtures.planJSON([["id": "w", "type": "wait", "ticks": "3"], end]), field: "steps[0].ticks")
        expectInvalid(Fixtures.planJSON([["id": "w", "type": "wait", "ticks": 0], end]), field: "steps[0].ticks")
        expectInvalid(Fixtures.planJSON([["id": "w", "type": "wait", "ticks": .double(1.5)], end]), field: "steps[0].ticks")
        expectInvalid(Fixtures.planJSON([["id": "w", "type": "wait"], end]), field: "steps[0].ticks")
        expectInvalid(Fixtures.planJSON([["id": "a", "type": "action"], end]), field: "steps[0].action")
        expectInvalid(Fixtures.planJSON([["id": "a", "type": "action", "action": ""], end]), field: "steps[0].action")
        expectInvalid(
            Fixtures.planJSON([["id": "a", "type": "action", "action": "x", "params": [1]], end]), field: "steps[0].params")
        expectInvalid(
            Fixtures.planJSON([["id": "a", "type": "action", "action": "x", "await": "yes"], end]), field: "steps[0].await")
        expectInvalid(
            Fixtures.planJSON([["id": "a", "type": "action", "action": "x", "retries": -1], end]), field: "steps[0].retries")
        expectInvalid(
            Fixtures.planJSON([["id": "a", "type": "action", "action": "x", "retries": 101], end]), field: "steps[0].retries")
        expectInvalid(Fixtures.planJSON([["id": "e", "type": "end", "outcome": 1]]), field: "steps[0].outcome")
        expectInvalid(Fixtures.planJSON([["id": "e", "type": "end", "ticks": 1]]), field: "steps[0].ticks")
        expectInvalid(Fixtures.planJSON([["id": "w", "type": "wait", "ticks": 1, "signal": "s"], end]), field: "steps[0].signal")
        expectInvalid(Fixtures.planJSON([["id": "l", "type": "waitForSignal"], end]), field: "steps[0].signal")
        expectInvalid(
            Fixtures.planJSON([["id": "l", "type": "waitForSignal", "signal": "s", "timeoutTicks": -2], end]),
            field: "steps[0].timeoutTicks")
        expectInvalid(Fixtures.planJSON([["id": "b", "type": "branch", "cases": "x"], end]), field: "steps[0].cases")
        expectInvalid(Fixtures.planJSON([["id": "b", "type": "branch", "cases": []], end]), field: "steps[0].cases")
        expectInvalid(Fixtures.planJSON([["id": "b", "type": "branch", "cases": [5], "default": "e"], end]), field: "steps[0].cases[0]")
        expectInvalid(
            Fixtures.planJSON([["id": "b", "type": "branch", "cases": [["next": "e"]], "default": "e"], end]),
            field: "steps[0].cases[0].when")
        expectInvalid(
            Fixtures.planJSON([
                ["id": "b", "type": "branch", "cases": [["when": ["op": "exists"], "next": "e"]], "default": "e"], end,
            ]),
            field: "steps[0].cases[0].when.var")
        expectInvalid(
            Fixtures.planJSON([
                ["id": "b", "type": "branch", "cases": [["when": ["var": "v", "op": "exists"]]], "default": "e"], end,
            ]),
            field: "steps[0].cases[0].next")
    }

    @Test(arguments: ["eq", "ne", "lt", "lte", "gt", "gte", "in", "exists"])
    func branchOpsAreAccepted(op: String) throws {
        let value: JSONValue = op == "in" ? ["a", "b"] : "a"
        let plan = try Plan.parse(
            Fixtures.planJSON([
                [
                    "id": "b", "type": "branch",
                    "cases": [["when": ["var": "contact.tier", "op": .string(op), "value": value], "next": "e"]],
                ],
                end,
            ]))
        guard case .branch(let cases, let d)? = plan.step("b")?.kind else {
            Issue.record("not a branch")
            return
        }
        #expect(d == nil)
        #expect(cases.first?.when.op.rawValue == op)
        #expect(cases.first?.when.variable == "contact.tier")
        #expect(cases.first?.when.value == value)
    }

    @Test(arguments: ["equals", "EQ", "==", "contains", ""])
    func unknownBranchOpsAreRejected(op: String) {
        expectInvalid(
            Fixtures.planJSON([
                ["id": "b", "type": "branch", "cases": [["when": ["var": "v", "op": .string(op), "value": 1], "next": "e"]]],
                end,
            ]),
            field: "steps[0].cases[0].when.op", containing: "eq, ne, lt, lte, gt, gte, in, exists")
    }

    @Test func branchOpValueRules() throws {
        expectInvalid(
            Fixtures.planJSON([
                ["id": "b", "type": "branch", "cases": [["when": ["var": "v", "op": "in", "value": "a"], "next": "e"]]], end,
            ]),
            field: "steps[0].cases[0].when.value")
        expectInvalid(
            Fixtures.planJSON([
                ["id": "b", "type": "branch", "cases": [["when": ["var": "v", "op": "gt"], "next": "e"]]], end,
            ]),
            field: "steps[0].cases[0].when.value")
        // exists needs no value.
        let plan = try Plan.parse(
            Fixtures.planJSON([
                ["id": "b", "type": "branch", "cases": [["when": ["var": "v", "op": "exists"], "next": "e"]]], end,
            ]))
        #expect(plan.steps.count == 2)
    }

    @Test func errorsAreDeterministic() {
        // Several problems: the same one is reported every time (keys are checked in sorted order).
        let json: JSONValue = ["id": "p", "zeta": 1, "alpha": 2, "steps": [end]]
        let first = planError(json)
        for _ in 0..<20 { #expect(planError(json) == first) }
        #expect(first?.field == "alpha")
    }
}
