// Shared by the fuzz targets. Each target is compiled into one module together with Sources/DEECore/*.swift
// (see scripts/fuzz), so internal API is reachable and DEECore is instrumented for coverage.

/// Stops the process with a message libFuzzer shows next to the input that caused it.
func violated(_ what: String, _ detail: @autoclosure () -> String = "") -> Never {
    let d = detail()
    fatalError("fuzz invariant violated: \(what)" + (d.isEmpty ? "" : " — " + String(d.prefix(400))))
}

/// A small deterministic generator seeded from the input, for choices a target makes beyond the bytes' meaning.
struct InputRandom {
    private var state: UInt64

    init(_ bytes: UnsafeBufferPointer<UInt8>) {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in bytes { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 }
        state = h | 1
    }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    mutating func below(_ n: Int) -> Int { n <= 0 ? 0 : Int(next() % UInt64(n)) }
}

/// JSON invariants: the canonical form parses again, to itself (plan hashes, fingerprints and audit checksums
/// rely on it being stable).
func checkCanonical(_ v: JSONValue) {
    let c = v.canonical
    guard let again = JSONValue.parse(c) else { violated("the canonical form of a parsed value does not parse", c) }
    let c2 = again.canonical
    guard c2 == c else { violated("canonical(parse(canonical(v))) != canonical(v)", c + "  vs  " + c2) }
}

/// Error invariants: a code, a message, a field for bad_request and plan_invalid, and a reply form that is JSON.
func checkError(_ e: DEEError) {
    guard !e.message.isEmpty else { violated("an error without a message", e.code.rawValue) }
    if e.code == .badRequest || e.code == .planInvalid {
        // The field may be "" when the field at fault is an empty field name (Redis allows them).
        guard e.field != nil else { violated("\(e.code.rawValue) without a field", e.message) }
    }
    guard let back = JSONValue.parse(e.json.canonical), DEEError(json: back) == e else {
        violated("an error's reply form does not read back", e.description)
    }
}

/// Drives a validated plan through the pure core the way the engine does (start, ticks to each due tick, signals,
/// action results, pause and resume), then replays the audit log: it must be identical, and the chain must verify.
func simulate(_ plan: Plan, _ rng: inout InputRandom, startClock: Int) {
    let signer = AuditSigner()
    var clock = startClock
    var ms: UInt64 = 1_700_000_000_000
    func context() -> ChangeContext {
        ms += 1
        let id = EntryID(ms: ms, seq: 0)
        return ChangeContext(commandId: id, requestId: id.description, actor: "fuzz", clock: clock)
    }
    let contact: [String: JSONValue] = [
        "id": "c-1", "email": "jane@example.com", "tier": "gold", "score": .int(Int.max), "n": .int(Int.min),
    ]
    let variables: [String: JSONValue] = ["tier": "gold", "count": 3, "big": .int(Int.max), "neg": .int(Int.min)]
    let startTicks: [Int?] = [nil, clock, clock + 1, clock + 2, 2_147_483_647]
    let start = startTicks[rng.below(startTicks.count)]
    var change = Transitions.start(
        runId: RunID.make(entry: EntryID(ms: ms, seq: 0), index: 0, partition: 0), plan: plan, version: 1,
        contact: contact, contactId: "c-1", variables: variables, startTick: start, context: context(), signer: signer)
    var run = change.run
    var entries = change.audit
    func resume() -> RunChange? {
        // The engine applies kept inputs under the resume's own context; so does Replay.
        let ctx = context()
        guard var c = try? Transitions.resume(run: run, context: ctx, signer: signer) else { return nil }
        Stepper.applyDeferred(&c, plan: plan, context: ctx, signer: signer)
        return c
    }
    for _ in 0..<64 {
        guard run.status.isOpen else { break }
        var next: RunChange?
        switch rng.below(8) {
        case 0:
            let names = plan.exitOn + plan.steps.compactMap { s -> String? in
                if case .waitForSignal(let name, _, _, _) = s.kind { return name } else { return nil }
            } + ["other"]
            next = Stepper.signal(
                run: run, plan: plan, name: names[rng.below(names.count)], data: ["v": .int(rng.below(3))],
                context: context(), signer: signer)
        case 1:
            if let key = run.awaitKey {
                next = Stepper.actionResult(
                    run: run, plan: plan, key: key, ok: rng.below(2) == 0, error: "no", data: ["x": 1], context: context(),
                    signer: signer)
            }
        case 2:
            if run.status == .paused {
                next = resume()
            } else {
                next = try? Transitions.pause(run: run, reason: "fuzz", context: context(), signer: signer)
            }
        default:
            if run.status == .paused {
                next = resume()
            } else if let due = run.due {
                // Jump to the tick the run is due (a long wait is reached at once), or the next tick.
                if due > clock { clock = due } else if clock < Int.max { clock += 1 }
                next = Stepper.tick(run: run, plan: plan, context: context(), signer: signer)
            } else {
                next = try? Transitions.cancel(run: run, reason: "fuzz", action: "cancel", context: context(), signer: signer)
            }
        }
        if let c = next {
            guard c.audit.count == 1 else { violated("a change with \(c.audit.count) audit entries (want 1)") }
            change = c
            run = c.run
            entries += c.audit
            _ = c.fieldChanges
            if run.stepsRemaining < 0 || run.stepsCompleted < 0 { violated("negative step counts", "\(run.wire.canonical)") }
        }
    }
    guard signer.verify(entries: entries, head: run.auditHead, count: run.auditCount).valid else {
        violated("the audit chain of a simulated run does not verify")
    }
    let replay = Replay.run(entries: entries, plan: plan, recorded: run, signer: signer)
    guard replay.identical else { violated("replay is not identical", JSONValue.array(replay.steps).canonical) }
    // Layout 2 (docs/MEMORY.md): a run hash is read with its key's id, which it no longer stores.
    guard Run(id: run.id, fields: Dictionary(run.storedFields.compactMap { k, v in v.map { (k, $0) } }, uniquingKeysWith: { a, _ in a })) == run
    else { violated("a run does not read back from its stored fields", run.wire.canonical) }
}
