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

    /// A flat `[field, value, field, value, …]` reply (`HGETALL`, a stream entry's fields) as a dictionary.
    public var pairs: [String: String] {
        guard let items = array else { return [:] }
        var out: [String: String] = [:]
        out.reserveCapacity(items.count / 2)
        var i = 0
        while i + 1 < items.count {
            if let k = items[i].string, let v = items[i + 1].string { out[k] = v }
            i += 2
        }
        return out
    }

    /// A flat array (`HGETALL`) as its (field, value) pairs, in reply order.
    public var pairList: [(String, String)] {
        guard let items = array else { return [] }
        var out: [(String, String)] = []
        out.reserveCapacity(items.count / 2)
        var i = 0
        while i + 1 < items.count {
            if let k = items[i].string, let v = items[i + 1].string { out.append((k, v)) }
            i += 2
        }
        return out
    }

    /// Stream entries (`XRANGE`, or one stream of an `XREAD` reply) as (id, fields).
    public var streamEntries: [(id: String, fields: [String: String])] {
        (array ?? []).compactMap { item in
            guard let pair = item.array, pair.count == 2, let id = pair[0].string else { return nil }
            return (id, pair[1].pairs)
        }
    }

    /// Stream entries as (id, fields in their order). An entry deleted while pending has no fields.
    public static func streamEntryList(_ reply: RESPValue) -> [(id: String, fields: [(String, String)])] {
        (reply.array ?? []).compactMap { item in
            guard let pair = item.array, pair.count == 2, let id = pair[0].string else { return nil }
            let flat = pair[1].array ?? []
            var fields: [(String, String)] = []
            var i = 0
            while i + 1 < flat.count {
                fields.append((flat[i].string ?? "", flat[i + 1].string ?? ""))
                i += 2
            }
            return (id, fields)
        }
    }
}
