/// A one-line progress bar on stderr, redrawn in place (`\r`); silent when not on a terminal.
struct ProgressBar: Sendable {
    let total: Int
    let enabled: Bool
    var width = 30

    /// `[#########.....................]  300/1000 contacts  created 290  skipped 10  errors 0`
    func line(done: Int, _ counts: (created: Int, skipped: Int, errors: Int)) -> String {
        let filled = total == 0 ? width : min(width, done * width / max(total, 1))
        let bar = String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled)
        return "[\(bar)] \(done)/\(total) contacts  created \(counts.created)  skipped \(counts.skipped)"
            + "  errors \(counts.errors)"
    }

    func draw(done: Int, _ counts: (created: Int, skipped: Int, errors: Int)) {
        guard enabled else { return }
        Output.standardError("\r" + line(done: done, counts))
    }

    func finish() {
        guard enabled else { return }
        Output.standardError("\n")
    }
}
