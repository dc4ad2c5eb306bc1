/// A reply from Redis, copied out of hiredis' reply tree into Swift values.
public enum RESPValue: Sendable, Hashable {
    case null
    /// A bulk or status string. DEE only stores UTF-8 text, so strings are decoded as UTF-8.
    case string(String)
    case integer(Int)
    case array([RESPValue])
    /// An error the server returned (`-ERR ...`). Kept as a value so a pipeline can carry it beside successes.
    case error(String)

    /// The string, or the decimal form of an integer.
    public var string: String? {
        switch self {
        case .string(let s): return s
        case .integer(let i): return String(i)
        default: return nil
        }
    }

    /// The integer, or a string that holds one.
    public var int: Int? {
        switch self {
        case .integer(let i): return i
        case .string(let s): return Int(s)
        default: return nil
        }
    }

    /// The elements of an array reply; `[]` for a null reply.
    public var array: [RESPValue]? {
        switch self {
        case .array(let a): return a
        case .null: return []
        default: return nil
        }
    }

    public var isNull: Bool {
        if case .null = self { return true }
        return false
    }
}
