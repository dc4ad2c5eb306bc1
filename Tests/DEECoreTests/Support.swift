import DEECore

/// SplitMix64: a tiny deterministic generator, so property tests replay exactly from their seed.
struct SplitMix64: RandomNumberGenerator {
    private var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

enum Fixtures {
    /// The plan of SPEC 2.
    static let welcomeJSON: JSONValue = [
        "id": "welcome",
        "name": "Welcome sequence",
        "exitOn": ["unsubscribed"],
        "steps": [
            [
                "id": "intro", "type": "action", "action": "send_email",
                "params": ["template": "intro", "to": "{{contact.email}}"],
            ],
            ["id": "pause", "type": "wait", "ticks": 3],
            ["id": "nudge", "type": "action", "action": "send_email", "params": ["template": "nudge"]],
            [
                "id": "listen", "type": "waitForSignal", "signal": "replied", "timeoutTicks": 5,
                "onSignal": "won", "onTimeout": "lost",
            ],
            ["id": "won", "type": "end", "outcome": "replied"],
            ["id": "lost", "type": "end", "outcome": "no_reply"],
        ],
    ]

    /// `[action, wait 3, action, end]`, the example of SPEC 4.
    static let linearJSON: JSONValue = [
        "id": "linear",
        "steps": [
            ["id": "a", "type": "action", "action": "send_email"],
            ["id": "w", "type": "wait", "ticks": 3],
            ["id": "b", "type": "action", "action": "send_email"],
            ["id": "done", "type": "end"],
        ],
    ]

    static func plan(_ json: JSONValue) -> Plan {
        do throws(DEEError) {
            return try Plan.parse(json)
        } catch {
            fatalError("fixture plan invalid: \(error)")
        }
    }

    /// A plan with the given steps (an id is added).
    static func planJSON(_ steps: [JSONValue], id: String = "p") -> JSONValue {
        .object(["id": .string(id), "steps": .array(steps)])
    }

    static func context(ms: UInt64 = 1_795_428_000_000, seq: UInt64 = 0, clock: Int, actor: String? = "tester")
        -> ChangeContext
    {
        let entry = EntryID(ms: ms, seq: seq)
        return ChangeContext(commandId: entry, requestId: entry.description, actor: actor, clock: clock)
    }

    /// A freshly started run on the linear plan.
    static func startedRun(
        plan: Plan = Fixtures.plan(Fixtures.linearJSON), clock: Int = 0, startTick: Int? = nil, index: Int = 0,
        signer: AuditSigner = AuditSigner()
    ) -> RunChange {
        let ctx = context(clock: clock)
        return Transitions.start(
            runId: RunID.make(entry: ctx.commandId, index: index, partition: 0), plan: plan, version: 1,
            contact: ["id": "c1", "email": "jane@example.com"], contactId: "c1", variables: ["tier": "gold"],
            startTick: startTick, context: ctx, signer: signer)
    }
}
