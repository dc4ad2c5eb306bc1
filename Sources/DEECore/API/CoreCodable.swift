import Foundation

// Codable forms of DEECore's own types, so that the engine and its Swift clients share one definition of each.

extension Plan: Codable {
    /// Parses and validates a plan's JSON text (SPEC 2); errors are `plan_invalid` naming the path at fault.
    public init(json text: String) throws(DEEError) {
        guard let value = JSONValue.parse(text) else {
            throw DEEError(.planInvalid, "plan: is not JSON text", field: "plan")
        }
        self = try Plan.parse(value)
    }

    /// The plan as registered: its JSON object.
    public var json: JSONValue { JSONValue.parse(canonicalJSON) ?? .object([:]) }

    /// Decodes and validates a plan (SPEC 2).
    public init(from decoder: any Decoder) throws {
        let value = try JSONValue(from: decoder)
        do {
            self = try Plan.parse(value)
        } catch {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "\(error)"))
        }
    }

    /// Encodes the plan's JSON object.
    public func encode(to encoder: any Encoder) throws { try json.encode(to: encoder) }
}

extension DEEError: Codable {
    /// Decodes `{code, message, field?}`.
    public init(from decoder: any Decoder) throws {
        let value = try JSONValue(from: decoder)
        guard let error = DEEError(json: value) else {
            throw DecodingError.dataCorrupted(
                .init(codingPath: decoder.codingPath, debugDescription: "an error is {code, message, field?}"))
        }
        self = error
    }

    /// Encodes `{code, message, field?}`.
    public func encode(to encoder: any Encoder) throws { try json.encode(to: encoder) }
}

extension AuditEntry: Codable {
    /// When the change happened.
    public var date: Date { WireDate.date(at) }

    /// Decodes an entry as `getAudit` replies it.
    public init(from decoder: any Decoder) throws {
        let value = try JSONValue(from: decoder)
        guard let entry = AuditEntry(json: value) else {
            throw DecodingError.dataCorrupted(
                .init(codingPath: decoder.codingPath, debugDescription: "not an audit entry (SPEC 7)"))
        }
        self = entry
    }

    /// Encodes the entry as `getAudit` replies it.
    public func encode(to encoder: any Encoder) throws { try json.encode(to: encoder) }
}

extension RunFilter: Codable {
    /// Filters as the Runs API names them, with dates instead of epoch milliseconds (the window is
    /// [startedAfter, startedBefore)): `.matching(status: [.active], planId: "old-plan")`.
    public static func matching(
        status: [RunStatus]? = nil, planId: String? = nil, contactId: String? = nil, startedAfter: Date? = nil,
        startedBefore: Date? = nil
    ) -> RunFilter {
        RunFilter(
            statuses: status, planId: planId, contactId: contactId, startedAfter: startedAfter.map(WireDate.milliseconds),
            startedBefore: startedBefore.map(WireDate.milliseconds))
    }

    /// The filters as SPEC 6 arguments: `status` an array of names, times ISO-8601.
    public var arguments: [String: JSONValue] {
        var o: [String: JSONValue] = [:]
        if let statuses { o["status"] = .array(statuses.map { .string($0.rawValue) }) }
        if let planId { o["planId"] = .string(planId) }
        if let contactId { o["contactId"] = .string(contactId) }
        if let startedAfter { o["startedAfter"] = .string(Timestamp.iso(startedAfter)) }
        if let startedBefore { o["startedBefore"] = .string(Timestamp.iso(startedBefore)) }
        return o
    }

    enum CodingKeys: String, CodingKey { case status, planId, contactId, startedAfter, startedBefore }

    /// Decodes filters as `listRuns` and `bulkCancel` take them: `status` one name or an array, times ISO-8601 or
    /// epoch ms.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        var statuses: [RunStatus]?
        if let one = try? c.decode(RunStatus.self, forKey: .status) {
            statuses = [one]
        } else {
            statuses = try c.decodeIfPresent([RunStatus].self, forKey: .status)
        }
        self.init(
            statuses: statuses, planId: try c.decodeIfPresent(String.self, forKey: .planId),
            contactId: try c.decodeIfPresent(String.self, forKey: .contactId),
            startedAfter: try WireDate.decodeIfPresent(c, .startedAfter).map(WireDate.milliseconds),
            startedBefore: try WireDate.decodeIfPresent(c, .startedBefore).map(WireDate.milliseconds))
    }

    /// Encodes ``arguments``.
    public func encode(to encoder: any Encoder) throws { try JSONValue.object(arguments).encode(to: encoder) }
}
