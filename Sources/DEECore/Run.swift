/// Run statuses (SPEC 3).
public enum RunStatus: String, Sendable, CaseIterable, Codable {
    case pending, active, waiting, paused, completed, failed, cancelled

    /// pending, active, waiting, paused: the run holds its contact's enrollment.
    public var isOpen: Bool {
        switch self {
        case .pending, .active, .waiting, .paused: return true
        case .completed, .failed, .cancelled: return false
        }
    }

    public static let open: [RunStatus] = [.pending, .active, .waiting, .paused]
}

/// An execution run: the fields of the Runs API, plus what the engine keeps to drive it.
public struct Run: Sendable, Equatable {
    public var id: String
    public var planId: String
    public var planVersion: Int
    public var contactId: String
    public var status: RunStatus
    public var currentStep: String?
    public var stepsCompleted: Int
    public var stepsRemaining: Int
    public var startTick: Int
    public var currentTick: Int
    /// Epoch milliseconds, from the ingress entry id of the command that created the run.
    public var startedAt: Int64
    public var completedAt: Int64?
    public var outcome: String?
    public var variables: [String: JSONValue]
    public var error: String?

    // Engine state, not part of the API object.
    /// The contact as given at enrollment (for `{{contact.x}}`).
    public var contact: [String: JSONValue]
    /// The status a paused run returns to.
    public var pausedFrom: RunStatus?
    /// The tick at which the run next needs the engine (start, step, wake or timeout); nil when it waits only
    /// for a signal or is terminal. Kept while paused, so that resume knows the timer.
    public var due: Int?
    /// The attempt number of the awaited action the run is waiting for.
    public var attempt: Int
    /// The idempotency key of the awaited action request the run is waiting for.
    public var awaitKey: String?
    /// Signals and action results that reached the run while paused, applied in order on resume.
    public var deferred: [JSONValue]
    /// Head of the run's audit hash chain, and the number of entries in it.
    public var auditHead: String
    public var auditCount: Int

    public static let genesis = String(repeating: "0", count: 64)

    public init(
        id: String, planId: String, planVersion: Int, contactId: String, contact: [String: JSONValue],
        status: RunStatus, currentStep: String?, stepsRemaining: Int, startTick: Int, startedAt: Int64,
        variables: [String: JSONValue]
    ) {
        self.id = id
        self.planId = planId
        self.planVersion = planVersion
        self.contactId = contactId
        self.contact = contact
        self.status = status
        self.currentStep = currentStep
        self.stepsCompleted = 0
        self.stepsRemaining = stepsRemaining
        self.startTick = startTick
        self.currentTick = startTick
        self.startedAt = startedAt
        self.completedAt = nil
        self.outcome = nil
        self.variables = variables
        self.error = nil
        self.pausedFrom = nil
        self.due = nil
        self.attempt = 0
        self.awaitKey = nil
        self.deferred = []
        self.auditHead = Run.genesis
        self.auditCount = 0
    }

    /// Makes the run terminal: no current step, nothing remaining, no timer, no awaited action, not paused.
    public mutating func end(_ terminal: RunStatus, outcome: String?) {
        status = terminal
        self.outcome = outcome
        currentStep = nil
        stepsRemaining = 0
        due = nil
        awaitKey = nil
        pausedFrom = nil
    }

    /// The `ExecutionRun` as it travels on the wire: dates as ISO-8601 UTC with milliseconds.
    public var wire: JSONValue {
        .object([
            "id": .string(id),
            "planId": .string(planId),
            "planVersion": .int(planVersion),
            "contactId": .string(contactId),
            "status": .string(status.rawValue),
            "currentStep": currentStep.json,
            "stepsCompleted": .int(stepsCompleted),
            "stepsRemaining": .int(stepsRemaining),
            "startTick": .int(startTick),
            "currentTick": .int(currentTick),
            "startedAt": .string(Timestamp.iso(startedAt)),
            "completedAt": completedAt.map { .string(Timestamp.iso($0)) } ?? .null,
            "outcome": outcome.json,
            "variables": .object(variables),
            "error": error.json,
        ])
    }

    /// `wire.canonical`, printed directly in the keys' sorted order without building the object: every command
    /// that answers with a run prints one (RunTests checks the two agree).
    public var wireText: String {
        var out: [UInt8] = []
        out.reserveCapacity(320)
        func key(_ name: StaticString) {
            out.append(out.isEmpty ? UInt8(ascii: "{") : UInt8(ascii: ","))
            out.append(UInt8(ascii: "\""))
            out.append(contentsOf: UnsafeBufferPointer(start: name.utf8Start, count: name.utf8CodeUnitCount))
            out.append(contentsOf: [UInt8(ascii: "\""), UInt8(ascii: ":")])
        }
        func text(_ s: String?) {
            if let s { JSONValue.writeString(s, to: &out) } else { out.append(contentsOf: "null".utf8) }
        }
        key("completedAt"); text(completedAt.map(Timestamp.iso))
        key("contactId"); text(contactId)
        key("currentStep"); text(currentStep)
        key("currentTick"); JSONValue.writeInt(currentTick, to: &out)
        key("error"); text(error)
        key("id"); text(id)
        key("outcome"); text(outcome)
        key("planId"); text(planId)
        key("planVersion"); JSONValue.writeInt(planVersion, to: &out)
        key("startTick"); JSONValue.writeInt(startTick, to: &out)
        key("startedAt"); text(Timestamp.iso(startedAt))
        key("status"); text(status.rawValue)
        key("stepsCompleted"); JSONValue.writeInt(stepsCompleted, to: &out)
        key("stepsRemaining"); JSONValue.writeInt(stepsRemaining, to: &out)
        key("variables"); JSONValue.object(variables).write(to: &out)
        out.append(UInt8(ascii: "}"))
        return String(decoding: out, as: UTF8.self)
    }

    // MARK: - Storage form: one Redis hash per run, short field names, defaults and derived fields absent.

    /// The stored attributes: the field name of layout 2 (docs/MEMORY.md) and of layout 1, the one before it. Layout
    /// 2 stores a field only when it differs from its default (absent: 0, `{}`, `[]`, null; `currentTick` absent when
    /// it equals `startTick`) and never stores `id` (the key holds it) or `startedAt` when it is the id's first 13
    /// digits, as it always is for a run the engine created. A reader takes the short name, else the long one, else
    /// the default, so a layout-1 hash, or one a layout-2 writer updated in part, reads the same (see `fieldChanges`:
    /// a deletion removes both names).
    public static let storedNames: [(short: String, long: String)] = [
        ("p", "planId"), ("v", "planVersion"), ("c", "contactId"), ("s", "status"), ("st", "currentStep"),
        ("n", "stepsCompleted"), ("r", "stepsRemaining"), ("t0", "startTick"), ("t", "currentTick"),
        ("sa", "startedAt"), ("ca", "completedAt"), ("o", "outcome"), ("vr", "variables"), ("e", "error"),
        ("ct", "contact"), ("pf", "pausedFrom"), ("d", "due"), ("at", "attempt"), ("k", "awaitKey"),
        ("df", "deferred"), ("h", "auditHead"), ("a", "auditCount"),
    ]

    /// Layout-1 field names that layout 2 never writes.
    public static let legacyOnlyNames = ["id"]

    /// The startedAt a run id implies: its first 13 digits (nil when the id is no run id).
    public static func startedAt(impliedBy id: String) -> Int64? {
        RunID.components(of: id).map { Int64(clamping: $0.ms) }
    }

    /// A number field's stored form: nil (absent) when it is 0.
    static func nonZero(_ n: Int) -> String? { n == 0 ? nil : String(n) }

    /// Every stored field, by its short name, in ``storedNames``' order; nil values are to be deleted from the hash.
    public var storedFields: [(String, String?)] {
        var fields: [(String, String?)] = []
        fields.reserveCapacity(Self.storedNames.count)
        forEachStoredField { fields.append(($0, $1)) }
        return fields
    }

    /// The fields a new run's hash is written with: ``storedFields`` without the absent ones (a new run has none to
    /// delete), collected without the list of optionals in between.
    public var presentStoredFields: [(String, String)] {
        var fields: [(String, String)] = []
        fields.reserveCapacity(Self.storedNames.count)
        forEachStoredField { name, value in if let value { fields.append((name, value)) } }
        return fields
    }

    /// Calls `body` with each stored field by its short name and its stored form (nil: absent), in ``storedNames``'
    /// order: the one list both forms above come from.
    func forEachStoredField(_ body: (String, String?) -> Void) {
        body("p", planId)
        body("v", String(planVersion))
        body("c", contactId)
        body("s", status.rawValue)
        body("st", currentStep)
        body("n", Self.nonZero(stepsCompleted))
        body("r", Self.nonZero(stepsRemaining))
        body("t0", Self.nonZero(startTick))
        body("t", currentTick == startTick ? nil : String(currentTick))
        body("sa", Self.startedAt(impliedBy: id) == startedAt ? nil : String(startedAt))
        body("ca", completedAt.map { String($0) })
        body("o", outcome)
        body("vr", variables.isEmpty ? nil : JSONValue.object(variables).canonical)
        body("e", error)
        body("ct", contact.isEmpty ? nil : JSONValue.object(contact).canonical)
        body("pf", pausedFrom?.rawValue)
        body("d", due.map { String($0) })
        body("at", Self.nonZero(attempt))
        body("k", awaitKey)
        body("df", deferred.isEmpty ? nil : JSONValue.array(deferred).canonical)
        body("h", auditHead == Run.genesis ? nil : auditHead)
        body("a", Self.nonZero(auditCount))
    }

    /// A name of at most two bytes as a number (first byte high), nil for a longer one.
    static func shortCode(_ name: String) -> UInt16? {
        let bytes = name.utf8
        guard bytes.count <= 2 else { return nil }
        var code: UInt16 = 0
        for b in bytes { code = code << 8 | UInt16(b) }
        return code
    }

    /// ``storedNames``' short names as codes, in order: a field name is found among 22 numbers, not hashed.
    static let shortCodes: [UInt16] = storedNames.map { shortCode($0.short) ?? 0 }

    /// The position of each long name (layout 1) in ``storedNames``.
    static let longSlots: [String: Int] = Dictionary(
        uniqueKeysWithValues: storedNames.enumerated().map { ($0.element.long, $0.offset) })

    /// ``storedNames``' positions, by short name.
    private enum Slot: Int {
        case p, v, c, s, st, n, r, t0, t, sa, ca, o, vr, e, ct, pf, d, at, k, df, h, a
    }

    /// Reads a run back from the hash stored under `id` (layout 2, layout 1, or a mix: see ``storedNames``); the id
    /// defaults to a layout-1 hash's `id` field. Nil when required fields are missing or malformed.
    public init?(id: String? = nil, fields f: [String: String]) {
        self.init(id: id, storedPairs: f.map { ($0.key, $0.value) })
    }

    /// The same from the hash's (field, value) pairs as `HGETALL` answers them: each short name found among
    /// ``shortCodes``, not the hash made into a dictionary and then searched for every name (its hashing was the
    /// largest part of reading a page of runs for listRuns); a long name (layout 1) looked up in ``longSlots``.
    public init?(id: String? = nil, storedPairs: [(String, String)]) {
        // A short name wins over its long one (layout 1's, in a hash a layout-2 writer updated in part).
        var short = [String?](repeating: nil, count: Self.storedNames.count)
        var long = short
        var idField: String?
        for (name, value) in storedPairs {
            if let code = Self.shortCode(name), let slot = Self.shortCodes.firstIndex(of: code) {
                short[slot] = value
            } else if let slot = Self.longSlots[name] {
                long[slot] = value
            } else if name == "id" {
                idField = value
            }
        }
        func v(_ slot: Slot) -> String? { short[slot.rawValue] ?? long[slot.rawValue] }
        func int(_ slot: Slot) -> Int? { v(slot).flatMap { Int($0) } }
        guard let id = id ?? idField, let planId = v(.p), let version = int(.v), let contactId = v(.c),
            let status = v(.s).flatMap(RunStatus.init(rawValue:)),
            let startedAt = v(.sa).map({ Int64($0) }) ?? Self.startedAt(impliedBy: id)
        else { return nil }
        let startTick: Int
        if let text = v(.t0) {
            guard let n = Int(text) else { return nil }
            startTick = n
        } else {
            startTick = 0
        }
        self.init(
            id: id, planId: planId, planVersion: version, contactId: contactId,
            contact: v(.ct).flatMap(JSONValue.parse)?.object ?? [:], status: status,
            currentStep: v(.st), stepsRemaining: int(.r) ?? 0,
            startTick: startTick, startedAt: startedAt,
            variables: v(.vr).flatMap(JSONValue.parse)?.object ?? [:])
        stepsCompleted = int(.n) ?? 0
        currentTick = int(.t) ?? startTick
        completedAt = v(.ca).flatMap { Int64($0) }
        outcome = v(.o)
        error = v(.e)
        pausedFrom = v(.pf).flatMap(RunStatus.init(rawValue:))
        due = int(.d)
        attempt = int(.at) ?? 0
        awaitKey = v(.k)
        deferred = v(.df).flatMap(JSONValue.parse)?.array ?? []
        auditHead = v(.h) ?? Run.genesis
        auditCount = int(.a) ?? 0
    }
}
