import DEECore
import Testing

/// Property: the pure core is deterministic. Random plans driven by random inputs (ticks, signals, action
/// results, pause, resume, cancel) give identical runs and effects when run twice, and replaying the audit log
/// the run recorded reproduces it entry for entry.
@Suite("Stepper properties")
struct StepperPropertyTests {
    /// A random valid plan: a chain of steps of every type ending in `end` steps.
    static func randomPlan(_ rng: inout SplitMix64) -> Plan {
        let n = Int.random(in: 3...8, using: &rng)
        var steps: [JSONValue] = []
        for i in 0..<n {
            let id = JSONValue.string("s\(i)")
            let next = JSONValue.string("s\(i + 1)")
            switch Int.random(in: 0..<5, using: &rng) {
            case 0:
                steps.append(["id": id, "type": "action", "action": "send", "params": ["to": "{{contact.email}}", "n": "{{vars.n}}"]])
            case 1:
                steps.append([
                    "id": id, "type": "action", "action": "call", "await": true, "timeoutTicks": 2, "retries": 1,
                    "onFailure": "fail",
                ])
            case 2:
                steps.append(["id": id, "type": "wait", "ticks": .int(Int.random(in: 1...3, using: &rng))])
            case 3:
                steps.append(["id": id, "type": "waitForSignal", "signal": "replied", "timeoutTicks": 3, "onSignal": next])
            default:
                steps.append([
                    "id": id, "type": "branch",
                    "cases": [["when": ["var": "n", "op": "gt", "value": 5], "next": next]], "default": next,
                ])
            }
        }
        steps.append(["id": .string("s\(n)"), "type": "end", "outcome": "done"])
        steps.append(["id": "fail", "type": "end", "outcome": "failed_action"])
        return try! Plan.parse(["id": "prop", "exitOn": ["stop"], "steps": .array(steps)])
    }

    struct Trace: Equatable {
        var runs: [Run] = []
        var events: [RunEvent] = []
        var actions: [ActionRequest] = []
        var audit: [AuditEntry] = []
        var changes: [RunChange] = []
    }

    /// Drives one run with inputs drawn from `seed`; returns every intermediate run and effect.
    static func drive(plan: Plan, seed: UInt64) -> Trace {
        var rng = SplitMix64(seed: seed)
        let signer = AuditSigner()
        var seq: UInt64 = 0
        func context(_ clock: Int) -> ChangeContext {
            seq += 1
            return ChangeContext(
                commandId: EntryID(ms: 1_795_428_000_000 + seq, seq: 0), requestId: "r\(seq)", actor: "prop", clock: clock)
        }
        var trace = Trace()
        var clock = 0
        var change = Transitions.start(
            runId: "1795428000000-000000-00000-0", plan: plan, version: 1,
            contact: ["id": "c1", "email": "a@b.c"], contactId: "c1", variables: ["n": .int(Int.random(in: 0...10, using: &rng))],
            startTick: Bool.random(using: &rng) ? 2 : nil, context: context(clock), signer: signer)
        func record(_ c: RunChange) {
            trace.runs.append(c.run)
            trace.events += c.events
            trace.actions += c.actions
            trace.audit += c.audit
            trace.changes.append(c)
        }
        record(change)
        var run = change.run
        for _ in 0..<40 where run.status.isOpen {
            let next: RunChange?
            switch Int.random(in: 0..<10, using: &rng) {
            case 0..<5:
                clock += 1
                next = Stepper.tick(run: run, plan: plan, context: context(clock), signer: signer)
            case 5:
                next = Stepper.signal(
                    run: run, plan: plan, name: Bool.random(using: &rng) ? "replied" : "other", data: ["k": .int(Int(seq))],
                    context: context(clock), signer: signer)
            case 6:
                next = run.awaitKey.flatMap { key in
                    Stepper.actionResult(
                        run: run, plan: plan, key: key, ok: Bool.random(using: &rng), error: "nope", data: ["r": 1],
                        context: context(clock), signer: signer)
                }
            case 7:
                next = try? Transitions.pause(run: run, reason: "hold", context: context(clock), signer: signer)
            case 8:
                if var c = try? Transitions.resume(run: run, context: context(clock), signer: signer) {
                    Stepper.applyDeferred(&c, plan: plan, context: context(clock), signer: signer)
                    next = c
                } else {
                    next = nil
                }
            default:
                next = Int.random(in: 0..<8, using: &rng) == 0
                    ? Stepper.signal(run: run, plan: plan, name: "stop", data: nil, context: context(clock), signer: signer)
                    : nil
            }
            if let next {
                change = next
                record(change)
                run = change.run
            }
        }
        return trace
    }

    /// `fieldChanges` compares typed values; it must write exactly what a diff of the stored strings writes.
    @Test func fieldChangesAgreeWithADiffOfTheStoredFields() {
        var rng = SplitMix64(seed: 11)
        for i in 0..<150 {
            let plan = Self.randomPlan(&rng)
            for change in Self.drive(plan: plan, seed: UInt64(i)).changes {
                var set: [(String, String)] = []
                var deleted: [String] = []
                let old = change.before.map { Dictionary($0.storedFields.map { ($0.0, $0.1) }, uniquingKeysWith: { a, _ in a }) }
                let long = Dictionary(uniqueKeysWithValues: Run.storedNames.map { ($0.short, $0.long) })
                for (field, value) in change.run.storedFields {
                    if let old, old[field] == value { continue }
                    if let value {
                        set.append((field, value))
                    } else if old != nil {
                        // Under both names: a layout-1 hash keeps no stale long-named value.
                        deleted += [field, long[field] ?? field]
                    }
                }
                let got = change.fieldChanges
                #expect(got.set.map { "\($0.0)=\($0.1)" } == set.map { "\($0.0)=\($0.1)" })
                #expect(got.deleted == deleted)
            }
        }
    }

    @Test func sameInputsGiveTheSameRunsAndEffects() {
        var planRng = SplitMix64(seed: 7)
        var seen = Set<String>()
        for i in 0..<150 {
            let plan = Self.randomPlan(&planRng)
            let a = Self.drive(plan: plan, seed: UInt64(i))
            let b = Self.drive(plan: plan, seed: UInt64(i))
            #expect(a == b, "seed \(i)")
            for run in a.runs { seen.insert(run.status.rawValue + (run.outcome.map { ":" + $0 } ?? "")) }
        }
        // The generator reaches every kind of state, so the property is not vacuous.
        for state in ["pending", "active", "waiting", "paused", "completed:done", "completed:stop", "completed:failed_action"] {
            #expect(seen.contains(state), "no run reached \(state): \(seen.sorted())")
        }
    }

    @Test func replayOfTheAuditLogReproducesEveryRun() {
        var planRng = SplitMix64(seed: 11)
        for i in 0..<150 {
            let plan = Self.randomPlan(&planRng)
            let trace = Self.drive(plan: plan, seed: UInt64(1000 + i))
            guard let last = trace.runs.last else { continue }
            let result = Replay.run(entries: trace.audit, plan: plan, recorded: last, signer: AuditSigner())
            #expect(result.identical, "seed \(1000 + i): \(result.steps.filter { $0.object?["identical"] != true })")
            #expect(AuditSigner().verify(entries: trace.audit, head: last.auditHead, count: last.auditCount).valid)
        }
    }

    @Test func theSameStepAtTheSameTickAsksForTheSameIdempotencyKey() {
        var planRng = SplitMix64(seed: 3)
        for i in 0..<50 {
            let plan = Self.randomPlan(&planRng)
            let keys = Self.drive(plan: plan, seed: UInt64(i)).actions.map(\.idempotencyKey)
            #expect(Set(keys).count == keys.count, "a key repeated within one run's history (seed \(i))")
        }
    }
}
