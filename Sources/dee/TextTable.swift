/// A plain-text table for terminals: a header row, columns padded to their widest cell and two spaces apart, no
/// trailing spaces. A cell wider than `maxWidth` is cut with an ellipsis, so one long value cannot push the
/// others off the screen (the whole value is in `--json`).
struct TextTable: Sendable, Equatable {
    var headers: [String]
    var rows: [[String]]
    var maxWidth: Int

    init(headers: [String], rows: [[String]] = [], maxWidth: Int = 48) {
        self.headers = headers
        self.rows = rows
        self.maxWidth = max(maxWidth, 2)
    }

    mutating func append(_ row: [String]) {
        rows.append(row)
    }

    /// The table as lines ending in a line feed; an empty table is its header alone.
    func render() -> String {
        let columns = headers.count
        let cells = ([headers] + rows).map { row in
            (0..<columns).map { i in Self.cut(i < row.count ? Self.oneLine(row[i]) : "", maxWidth) }
        }
        var widths = Array(repeating: 0, count: columns)
        for row in cells {
            for (i, cell) in row.enumerated() { widths[i] = max(widths[i], cell.count) }
        }
        var out = ""
        for row in cells {
            var line = ""
            for (i, cell) in row.enumerated() {
                line += cell
                if i < columns - 1 { line += String(repeating: " ", count: widths[i] - cell.count + 2) }
            }
            while line.last == " " { line.removeLast() }
            out += line + "\n"
        }
        return out
    }

    /// Control characters (a line feed in a reason, say) would break the grid.
    static func oneLine(_ text: String) -> String {
        String(text.map { $0.isNewline || $0 == "\t" ? " " : $0 })
    }

    static func cut(_ text: String, _ width: Int) -> String {
        text.count <= width ? text : String(text.prefix(width - 1)) + "…"
    }
}

/// Aligned `name  value` lines, for one object (a run, stats).
struct KeyValueBlock: Sendable, Equatable {
    var pairs: [(String, String)] = []

    static func == (a: KeyValueBlock, b: KeyValueBlock) -> Bool { a.render() == b.render() }

    mutating func append(_ name: String, _ value: String) {
        pairs.append((name, value))
    }

    func render() -> String {
        let width = pairs.map(\.0.count).max() ?? 0
        return pairs.map { name, value in
            name + String(repeating: " ", count: width - name.count + 2) + value + "\n"
        }.joined()
    }
}
