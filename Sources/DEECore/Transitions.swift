/// Command-driven transitions of one run (SPEC 3): pure functions from a run and a command to a ``RunChange``.
/// Tick-driven stepping lives in ``Stepper``.
public enum Transitions {
    /// A new run for `contact` on `plan` (SPEC 4): active at the clock, due at the next tick; or pending until
    /// `startTick` when that is later than the clock.
    public static func start(
        runId: String, plan: Plan, version: Int, contact: [String: JSONValue], contactId: String,
        variables: [String: JSONValue], startTick: Int?, context: ChangeContext, signer: AuditSigner
    ) -> RunChange {
        let clock = context.clock
        let pending = (startTick ?? clock) > clock
        var run = Run(
            id: runId, planId: plan.id, planVersion: version, contactId: contactId, contact: contact,
            status: pending ? .pending : .active, currentStep: plan.entry.id,
            stepsRemaining: plan.stepsRemaining(from: plan.entry.id), startTick: pending ? startTick! : clock,
            startedAt: context.at, variables: variables)
        run.currentTick = clock
        run.due = pending ? startTick! : Tick.after(clock, 1)
        var change = RunChange(run: run, created: true)
        change.event("run.created", context: context)
        change.audit(
            "execute",
            details: [
                "planId": .string(plan.id), "planVersion": .int(version), "status": .string(run.status.rawValue),
                "startTick": .int(run.startTick), "variables": .object(variables), "contact": .object(contact),
            ], context: context, signer: signer)
        return change
    }

    public static func pause(run: Run, reason: String?, context: ChangeContext, signer: AuditSigner) throws(DEEError)
        -> RunChange
    {
        guard [.pending, .active, .waiting].contains(run.status) else {
            throw invalid(run, "pauseRun", needs: "pending, active or waiting")
        }
        var change = RunChange(run: run)
        change.run.pausedFrom = run.status
        change.run.status = .paused
        change.run.currentTick = context.clock
        change.event("run.paused", context: context)
        change.audit(
            "pause", reason: reason, details: ["from": .string(run.status.rawValue)], context: context,
            signer: signer)
        return change
    }

    /// Back to the status the run had; a timer that passed while paused fires on the first tick after the
    /// resume. Signals and action results kept while paused are applied by ``Stepper/applyDeferred``.
    public static func resume(run: Run, context: ChangeContext, signer: AuditSigner) throws(DEEError) -> RunChange {
        guard run.status == .paused else { throw invalid(run, "resumeRun", needs: "paused") }
        var change = RunChange(run: run)
        change.run.status = run.pausedFrom ?? .active
        change.run.pausedFrom = nil
        change.run.currentTick = context.clock
        if let due = run.due, due <= context.clock { change.run.due = Tick.after(context.clock, 1) }
        change.event("run.resumed", context: context)
        change.audit(
            "resume", details: ["to": .string(change.run.status.rawValue)], context: context, signer: signer)
        return change
    }

    /// Cancels an open run (`cancelRun`, `bulkCancel`, `suppress`: `action` names which).
    public static func cancel(
        run: Run, reason: String?, action: String, context: ChangeContext, signer: AuditSigner
    ) throws(DEEError) -> RunChange {
        guard run.status.isOpen else { throw invalid(run, action, needs: "pending, active, waiting or paused") }
        var change = RunChange(run: run)
        finish(&change.run, status: .cancelled, outcome: nil, context: context)
        change.event("run.cancelled", context: context)
        change.audit(
            action, reason: reason, details: ["from": .string(run.status.rawValue)], context: context,
            signer: signer)
        return change
    }

    /// Makes a run terminal: no current step, nothing remaining, no timer.
    public static func finish(_ run: inout Run, status: RunStatus, outcome: String?, context: ChangeContext) {
        run.end(status, outcome: outcome)
        run.completedAt = context.at
        run.currentTick = context.clock
    }

    static func invalid(_ run: Run, _ command: String, needs: String) -> DEEError {
        DEEError(
            .invalidTransition,
            "run \(run.id) is \(run.status.rawValue); \(command) needs a run that is \(needs)", field: "runId")
    }
}
