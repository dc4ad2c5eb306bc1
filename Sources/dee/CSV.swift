/// A CSV reader after RFC 4180: comma-separated fields, double quotes around a field that holds commas, quotes
/// (doubled) or line breaks, CRLF or LF line ends, a UTF-8 byte-order mark ignored.
struct CSVReader: Sendable {
    /// One record and the line it starts on (from 1).
    struct Record: Sendable, Equatable {
        var line: Int
        var fields: [String]
    }

    struct ParseError: Error, Sendable, Equatable, CustomStringConvertible {
        var line: Int
        var message: String
        var description: String { "line \(line): \(message)" }
    }

    /// Every record, blank lines skipped.
    static func records(_ text: String) throws(ParseError) -> [Record] {
        var scalars = Substring(text).unicodeScalars[...]
        if scalars.first == "\u{FEFF}" { scalars.removeFirst() }
        var records: [Record] = []
        var fields: [String] = []
        var field = String.UnicodeScalarView()
        var line = 1
        var recordLine = 1
        var inQuotes = false
        var quotedField = false
        var index = scalars.startIndex

        func endField() {
            fields.append(String(field))
            field = String.UnicodeScalarView()
            quotedField = false
        }
        func endRecord() {
            endField()
            if !(fields.count == 1 && fields[0].isEmpty) {
                records.append(Record(line: recordLine, fields: fields))
            }
            fields = []
        }

        while index < scalars.endIndex {
            let c = scalars[index]
            index = scalars.index(after: index)
            if inQuotes {
                if c == "\"" {
                    if index < scalars.endIndex, scalars[index] == "\"" {
                        field.append("\"")
                        index = scalars.index(after: index)
                    } else {
                        inQuotes = false
                    }
                } else {
                    if c == "\n" { line += 1 }
                    field.append(c)
                }
                continue
            }
            switch c {
            case ",":
                endField()
            case "\r":
                if index < scalars.endIndex, scalars[index] == "\n" { index = scalars.index(after: index) }
                endRecord()
                line += 1
                recordLine = line
            case "\n":
                endRecord()
                line += 1
                recordLine = line
            case "\"" where field.isEmpty && !quotedField:
                inQuotes = true
                quotedField = true
            default:
                if quotedField {
                    throw ParseError(line: line, message: "text after a closing quote (write a quote inside a quoted field as \"\")")
                }
                field.append(c)
            }
        }
        if inQuotes { throw ParseError(line: recordLine, message: "a quoted field is never closed") }
        endRecord()
        return records
    }
}
