/// Re-executes a run from its recorded inputs (its audit log) with the same pure core, step by step beside
/// what was recorded (SPEC 6 `replay`). Every change writes exactly one audit entry that names its input, so
/// the log is the run's input history; a step is identical when the recomputed entry equals the recorded one
/// (checksums included).
public enum Replay {
    public static func run(
        entries: [AuditEntry], plan: Plan, recorded: Run, signer: AuditSigner
    ) -> (identical: Bool, steps: [JSONValue]) {
        var run: Run?
        var steps: [JSONValue] = []
        var identical = true
        for (i, e) in entries.enumerated() {
            guard let commandId = EntryID(e.commandId) else {
                identical = false
                steps.append(step(i, e, false, "unreadable commandId"))
                continue
            }
            let context = ChangeContext(commandId: commandId, requestId: e.requestId, actor: e.actor, clock: e.tick)
            let d = e.details.object ?? [:]
            var change: RunChange?
            var problem: String?
            if e.action == "execute" {
                let contact = d["contact"]?.object ?? [:]
                let pending = d["status"]?.string == "pending"
                change = Transitions.start(
                    runId: e.runId, plan: plan, version: d["planVersion"]?.int ?? recorded.planVersion, contact: contact,
                    contactId: recorded.contactId, variables: d["variables"]?.object ?? [:],
                    startTick: pending ? d["startTick"]?.int : nil, context: context, signer: signer)
            } else if let current = run {
                do {
                    change = try apply(e, d, to: current, plan: plan, context: context, signer: signer)
                } catch {
                    problem = error.message
                }
            } else {
                problem = "no execute entry before it"
            }
            let produced = change?.audit.last
            let same = produced == e && problem == nil
            if !same { identical = false }
            steps.append(step(i, e, same, problem ?? (produced == nil ? "the input changed nothing on replay" : nil)))
            if let change { run = change.run }
        }
        if run != recorded {
            identical = false
            steps.append(["index": .int(entries.count), "action": "state", "identical": false,
                          "note": "the replayed run differs from the stored run"])
        }
        return (identical, steps)
    }

    private static func apply(
        _ e: AuditEntry, _ d: [String: JSONValue], to run: Run, plan: Plan, context: ChangeContext, signer: AuditSigner
    ) throws(DEEError) -> RunChange? {
        switch e.action {
        case "pause":
            return try Transitions.pause(run: run, reason: e.reason, context: context, signer: signer)
        case "resume":
            var change = try Transitions.resume(run: run, context: context, signer: signer)
            Stepper.applyDeferred(&change, plan: plan, context: context, signer: signer)
            return change
        case "cancel", "bulkCancel", "suppress":
            return try Transitions.cancel(run: run, reason: e.reason, action: e.action, context: context, signer: signer)
        case "tick":
            return Stepper.tick(run: run, plan: plan, context: context, signer: signer)
        case "signal", "exit":
            return Stepper.signal(
                run: run, plan: plan, name: d["signal"]?.string ?? "", data: d["data"]?.object, context: context,
                signer: signer)
        case "defer":
            if let name = d["signal"]?.string {
                return Stepper.signal(run: run, plan: plan, name: name, data: d["data"]?.object, context: context, signer: signer)
            }
            fallthrough
        case "actionResult":
            return Stepper.actionResult(
                run: run, plan: plan, key: d["idempotencyKey"]?.string ?? "", ok: d["ok"]?.bool ?? false,
                error: d["error"]?.string, data: d["data"]?.object, context: context, signer: signer)
        default:
            throw DEEError(.internal, "unknown audit action \(e.action)")
        }
    }

    private static func step(_ i: Int, _ e: AuditEntry, _ identical: Bool, _ note: String?) -> JSONValue {
        var o: [String: JSONValue] = [
            "index": .int(i), "action": .string(e.action), "tick": .int(e.tick), "commandId": .string(e.commandId),
            "identical": .bool(identical),
        ]
        if let note { o["note"] = .string(note) }
        return .object(o)
    }
}
