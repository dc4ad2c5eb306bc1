import DEECore
import Foundation

/// Everything the CLI prints goes through here: unbuffered writes, so `events tail` lines appear as they come and
/// stdout and stderr interleave as written.
enum Output {
    static func standardOutput(_ text: String) {
        FileHandle.standardOutput.write(Data(text.utf8))
    }

    static func standardError(_ text: String) {
        FileHandle.standardError.write(Data(text.utf8))
    }

    /// A JSON document, indented, keys sorted, then a line feed.
    static func document(_ value: JSONValue) {
        standardOutput(JSONText.pretty(value) + "\n")
    }

    /// One JSON line (for streams).
    static func line(_ value: JSONValue) {
        standardOutput(value.canonical + "\n")
    }

    static var stdinIsTerminal: Bool { isatty(STDIN_FILENO) == 1 }
    static var stderrIsTerminal: Bool { isatty(STDERR_FILENO) == 1 }
}

/// JSON text for people: two-space indentation and sorted keys; scalars exactly as the canonical form writes them.
enum JSONText {
    static func pretty(_ value: JSONValue, indent: Int = 0) -> String {
        let pad = String(repeating: "  ", count: indent + 1)
        let close = String(repeating: "  ", count: indent)
        switch value {
        case .array(let items) where !items.isEmpty:
            let inner = items.map { pad + pretty($0, indent: indent + 1) }
            return "[\n" + inner.joined(separator: ",\n") + "\n" + close + "]"
        case .object(let members) where !members.isEmpty:
            let inner = members.keys.sorted().map { key in
                pad + JSONValue.string(key).canonical + ": " + pretty(members[key] ?? .null, indent: indent + 1)
            }
            return "{\n" + inner.joined(separator: ",\n") + "\n" + close + "}"
        default:
            return value.canonical
        }
    }
}

extension JSONValue {
    /// A member of an object, or null.
    subscript(_ key: String) -> JSONValue {
        object?[key] ?? .null
    }

    /// The value as a table cell: strings bare, null as `-`, anything else as compact JSON.
    var cell: String {
        switch self {
        case .null: return "-"
        case .string(let s): return s
        default: return canonical
        }
    }
}
