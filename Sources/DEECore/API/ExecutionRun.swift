import Foundation

/// An execution run as the Runs API shows it (SPEC 3): exactly the page's fields, plus `error`. It is what every
/// run-returning command replies; the engine makes it from its ``Run`` (``Run/executionRun``), whose ``Run/wire``
/// form it encodes to, field for field.
///
/// Dates travel as ISO-8601 UTC with milliseconds (`2026-11-23T10:00:00.000Z`), whatever the coder's date
/// strategy.
public struct ExecutionRun: Sendable, Hashable, Codable, Identifiable {
    /// The run id: `<ms>-<sequence>-<contact index>-<partition>`, sorting in creation order.
    public var id: String
    /// The plan the run executes.
    public var planId: String
    /// The plan version the run stays on for its whole life.
    public var planVersion: Int
    /// The contact the run is for.
    public var contactId: String
    /// Where the run is in its lifecycle.
    public var status: RunStatus
    /// The step the run is on (during a wait, the waiting step); nil once terminal.
    public var currentStep: String?
    /// Steps the run has finished.
    public var stepsCompleted: Int
    /// Steps on the default path from the current step to an end step, both included; 0 once terminal.
    public var stepsRemaining: Int
    /// The tick at which the run became (or, pending, will become) active.
    public var startTick: Int
    /// The tick at which the run last changed.
    public var currentTick: Int
    /// When the run was created (the time of the command that created it).
    public var startedAt: Date
    /// When the run became completed, failed or cancelled.
    public var completedAt: Date?
    /// The outcome of a completed run: its end step's `outcome`, or the `exitOn` signal's name.
    public var outcome: String?
    /// The execute's variables, then the data of the signals and action results that changed the run.
    public var variables: [String: JSONValue]
    /// Why a failed run failed.
    public var error: String?

    /// Makes a run value (the engine makes them from its ``Run``; tests and tools may too).
    public init(
        id: String, planId: String, planVersion: Int, contactId: String, status: RunStatus, currentStep: String?,
        stepsCompleted: Int, stepsRemaining: Int, startTick: Int, currentTick: Int, startedAt: Date,
        completedAt: Date? = nil, outcome: String? = nil, variables: [String: JSONValue] = [:], error: String? = nil
    ) {
        self.id = id
        self.planId = planId
        self.planVersion = planVersion
        self.contactId = contactId
        self.status = status
        self.currentStep = currentStep
        self.stepsCompleted = stepsCompleted
        self.stepsRemaining = stepsRemaining
        self.startTick = startTick
        self.currentTick = currentTick
        self.startedAt = startedAt
        self.completedAt = completedAt
        self.outcome = outcome
        self.variables = variables
        self.error = error
    }

    enum CodingKeys: String, CodingKey {
        case id, planId, planVersion, contactId, status, currentStep, stepsCompleted, stepsRemaining, startTick
        case currentTick, startedAt, completedAt, outcome, variables, error
    }

    /// Decodes the wire form; dates must be ISO-8601 (or epoch ms).
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        id = try c.decode(String.self, forKey: .id)
        planId = try c.decode(String.self, forKey: .planId)
        planVersion = try c.decode(Int.self, forKey: .planVersion)
        contactId = try c.decode(String.self, forKey: .contactId)
        status = try c.decode(RunStatus.self, forKey: .status)
        currentStep = try c.decodeIfPresent(String.self, forKey: .currentStep)
        stepsCompleted = try c.decode(Int.self, forKey: .stepsCompleted)
        stepsRemaining = try c.decode(Int.self, forKey: .stepsRemaining)
        startTick = try c.decode(Int.self, forKey: .startTick)
        currentTick = try c.decode(Int.self, forKey: .currentTick)
        startedAt = try WireDate.decode(c, .startedAt)
        completedAt = try WireDate.decodeIfPresent(c, .completedAt)
        outcome = try c.decodeIfPresent(String.self, forKey: .outcome)
        variables = try c.decodeIfPresent([String: JSONValue].self, forKey: .variables) ?? [:]
        error = try c.decodeIfPresent(String.self, forKey: .error)
    }

    /// Encodes the wire form, nulls included (as the engine replies it).
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(id, forKey: .id)
        try c.encode(planId, forKey: .planId)
        try c.encode(planVersion, forKey: .planVersion)
        try c.encode(contactId, forKey: .contactId)
        try c.encode(status, forKey: .status)
        try c.encode(currentStep, forKey: .currentStep)
        try c.encode(stepsCompleted, forKey: .stepsCompleted)
        try c.encode(stepsRemaining, forKey: .stepsRemaining)
        try c.encode(startTick, forKey: .startTick)
        try c.encode(currentTick, forKey: .currentTick)
        try c.encode(WireDate.text(startedAt), forKey: .startedAt)
        try c.encode(completedAt.map(WireDate.text), forKey: .completedAt)
        try c.encode(outcome, forKey: .outcome)
        try c.encode(variables, forKey: .variables)
        try c.encode(error, forKey: .error)
    }

    /// The wire form as a JSON value (equal to ``Run/wire`` for the run it was made from).
    public var wire: JSONValue {
        .object([
            "id": .string(id), "planId": .string(planId), "planVersion": .int(planVersion),
            "contactId": .string(contactId), "status": .string(status.rawValue), "currentStep": currentStep.json,
            "stepsCompleted": .int(stepsCompleted), "stepsRemaining": .int(stepsRemaining),
            "startTick": .int(startTick), "currentTick": .int(currentTick),
            "startedAt": .string(WireDate.text(startedAt)),
            "completedAt": completedAt.map { .string(WireDate.text($0)) } ?? .null, "outcome": outcome.json,
            "variables": .object(variables), "error": error.json,
        ])
    }
}

extension Run {
    /// The run as the Runs API shows it.
    public var executionRun: ExecutionRun {
        ExecutionRun(
            id: id, planId: planId, planVersion: planVersion, contactId: contactId, status: status,
            currentStep: currentStep, stepsCompleted: stepsCompleted, stepsRemaining: stepsRemaining,
            startTick: startTick, currentTick: currentTick, startedAt: WireDate.date(startedAt),
            completedAt: completedAt.map(WireDate.date), outcome: outcome, variables: variables, error: error)
    }
}

/// Dates on the wire: ISO-8601 UTC with milliseconds, from and to epoch milliseconds (``Timestamp``).
public enum WireDate {
    /// The date of epoch milliseconds.
    public static func date(_ milliseconds: Int64) -> Date {
        Date(timeIntervalSince1970: Double(milliseconds) / 1000)
    }

    /// The epoch milliseconds of a date (rounded to the nearest).
    public static func milliseconds(_ date: Date) -> Int64 {
        Int64((date.timeIntervalSince1970 * 1000).rounded())
    }

    /// `2026-11-23T10:00:00.000Z`.
    public static func text(_ date: Date) -> String { Timestamp.iso(milliseconds(date)) }

    static func decode<K: CodingKey>(_ c: KeyedDecodingContainer<K>, _ key: K) throws -> Date {
        if let ms = try? c.decode(Int64.self, forKey: key) { return date(ms) }
        let text = try c.decode(String.self, forKey: key)
        guard let ms = Timestamp.parse(text) else {
            throw DecodingError.dataCorruptedError(
                forKey: key, in: c, debugDescription: "not an ISO-8601 time or epoch ms: \(text)")
        }
        return date(ms)
    }

    static func decodeIfPresent<K: CodingKey>(_ c: KeyedDecodingContainer<K>, _ key: K) throws -> Date? {
        guard c.contains(key), try !c.decodeNil(forKey: key) else { return nil }
        return try decode(c, key)
    }
}
