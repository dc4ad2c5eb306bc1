/// The error codes of the wire protocol (SPEC 5).
public enum ErrorCode: String, Sendable, CaseIterable, Codable {
    case badRequest = "bad_request"
    case unknownCommand = "unknown_command"
    case notFound = "not_found"
    case invalidTransition = "invalid_transition"
    case alreadyEnrolled = "already_enrolled"
    case suppressed
    case planInvalid = "plan_invalid"
    case tooLarge = "too_large"
    case `internal`
}

/// An error a command is answered with: a code from the spec, a message for people, and the field at fault.
public struct DEEError: Error, Sendable, Equatable, CustomStringConvertible {
    public let code: ErrorCode
    public let message: String
    /// The argument or path at fault (`contact.id`, `steps[3].onTimeout`), when there is one.
    public let field: String?

    public init(_ code: ErrorCode, _ message: String, field: String? = nil) {
        self.code = code
        self.message = message
        self.field = field
    }

    public static func badRequest(_ field: String, _ message: String) -> DEEError {
        DEEError(.badRequest, "\(field): \(message)", field: field)
    }

    public var description: String { "\(code.rawValue): \(message)" }

    /// The reply form: `{code, message, field?}`.
    public var json: JSONValue {
        var o: [String: JSONValue] = ["code": .string(code.rawValue), "message": .string(message)]
        if let field { o["field"] = .string(field) }
        return .object(o)
    }

    public init?(json: JSONValue) {
        guard let o = json.object, let c = o["code"]?.string, let code = ErrorCode(rawValue: c),
            let message = o["message"]?.string
        else { return nil }
        self.init(code, message, field: o["field"]?.string)
    }
}
