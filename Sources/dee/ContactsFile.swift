import DEECore

/// The contacts of `bulk execute --contacts FILE`: JSON lines (one contact object a line), a JSON array of
/// objects, or CSV with a header row naming the attributes (an `id` column is required; every value is a string;
/// an empty cell leaves the attribute out).
enum ContactsFile {
    enum Format: String, Sendable, CaseIterable {
        case auto, jsonl, json, csv
    }

    struct ParseError: Error, Sendable, Equatable, CustomStringConvertible {
        var line: Int?
        var message: String
        var description: String { line.map { "line \($0): \(message)" } ?? message }
    }

    /// The format a file is in: by its extension, else by its first character (`{` JSON lines, `[` a JSON array,
    /// anything else CSV).
    static func detect(_ text: String, path: String) -> Format {
        let lower = path.lowercased()
        if lower.hasSuffix(".csv") { return .csv }
        if lower.hasSuffix(".jsonl") || lower.hasSuffix(".ndjson") { return .jsonl }
        let first = text.unicodeScalars.first { !" \t\r\n\u{FEFF}".unicodeScalars.contains($0) }
        switch first {
        case "{": return .jsonl
        case "[": return .json
        default: return .csv
        }
    }

    static func parse(_ text: String, format: Format, path: String = "") throws(ParseError) -> [JSONValue] {
        switch format == .auto ? detect(text, path: path) : format {
        case .auto, .jsonl: return try jsonLines(text)
        case .json: return try jsonArray(text)
        case .csv: return try csv(text)
        }
    }

    static func jsonLines(_ text: String) throws(ParseError) -> [JSONValue] {
        var contacts: [JSONValue] = []
        for (i, raw) in text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline).enumerated() {
            let line = raw.trimmingSpaces
            if line.isEmpty { continue }
            guard let value = JSONValue.parse(line) else {
                throw ParseError(line: i + 1, message: "not JSON")
            }
            guard value.object != nil else {
                throw ParseError(line: i + 1, message: "a contact is a JSON object, not \(value.typeName)")
            }
            contacts.append(value)
        }
        return contacts
    }

    static func jsonArray(_ text: String) throws(ParseError) -> [JSONValue] {
        guard let value = JSONValue.parse(text) else { throw ParseError(line: nil, message: "not JSON") }
        guard let items = value.array else {
            throw ParseError(line: nil, message: "a JSON file of contacts holds an array of objects")
        }
        for (i, item) in items.enumerated() where item.object == nil {
            throw ParseError(line: nil, message: "contact \(i) is \(item.typeName), not an object")
        }
        return items
    }

    static func csv(_ text: String) throws(ParseError) -> [JSONValue] {
        let records: [CSVReader.Record]
        do {
            records = try CSVReader.records(text)
        } catch {
            throw ParseError(line: error.line, message: error.message)
        }
        guard let header = records.first else { return [] }
        let names = header.fields.map { $0.trimmingSpaces }
        guard names.contains("id") else {
            throw ParseError(line: header.line, message: "the header row has no id column (got \(names.joined(separator: ",")))")
        }
        if let empty = names.firstIndex(of: "") {
            throw ParseError(line: header.line, message: "column \(empty + 1) of the header row has no name")
        }
        if Set(names).count != names.count {
            throw ParseError(line: header.line, message: "the header row names a column twice")
        }
        var contacts: [JSONValue] = []
        for record in records.dropFirst() {
            guard record.fields.count == names.count else {
                throw ParseError(
                    line: record.line, message: "\(record.fields.count) fields, the header has \(names.count)")
            }
            var contact: [String: JSONValue] = [:]
            for (name, value) in zip(names, record.fields) where !value.isEmpty {
                contact[name] = .string(value)
            }
            contacts.append(.object(contact))
        }
        return contacts
    }
}

extension StringProtocol {
    /// Without leading and trailing spaces, tabs and carriage returns.
    var trimmingSpaces: String {
        var s = Substring(self)
        while let c = s.first, c == " " || c == "\t" || c == "\r" { s.removeFirst() }
        while let c = s.last, c == " " || c == "\t" || c == "\r" { s.removeLast() }
        return String(s)
    }
}
