import DEECore

/// How runs read at a terminal: one run as aligned lines, several as a table.
enum RunView {
    static func block(_ run: JSONValue) -> String {
        var b = KeyValueBlock()
        b.append("run", run["id"].cell)
        b.append("plan", "\(run["planId"].cell) v\(run["planVersion"].cell)")
        b.append("contact", run["contactId"].cell)
        b.append("status", run["status"].cell)
        b.append(
            "step",
            "\(run["currentStep"].cell) (\(run["stepsCompleted"].cell) done, \(run["stepsRemaining"].cell) to go)")
        b.append("ticks", "started \(run["startTick"].cell), last changed \(run["currentTick"].cell)")
        b.append("startedAt", run["startedAt"].cell)
        b.append("completedAt", run["completedAt"].cell)
        b.append("outcome", run["outcome"].cell)
        if !run["error"].isNull { b.append("error", run["error"].cell) }
        b.append("variables", run["variables"].isNull ? "{}" : run["variables"].canonical)
        return b.render()
    }

    static let headers = ["ID", "PLAN", "CONTACT", "STATUS", "STEP", "DONE", "STARTED", "OUTCOME"]

    static func row(_ run: JSONValue) -> [String] {
        [
            run["id"].cell, "\(run["planId"].cell) v\(run["planVersion"].cell)", run["contactId"].cell,
            run["status"].cell, run["currentStep"].cell, run["stepsCompleted"].cell, run["startedAt"].cell,
            run["outcome"].cell,
        ]
    }

    /// A `listRuns` result: the table, then which rows of how many.
    static func list(_ result: JSONValue, offset: Int) -> String {
        let runs = result["runs"].array ?? []
        let total = result["total"].int ?? runs.count
        var table = TextTable(headers: headers)
        for run in runs { table.append(row(run)) }
        let footer: String
        if runs.isEmpty {
            footer = total == 0 ? "no runs match" : "no runs at offset \(offset) (\(total) match)"
        } else {
            footer = "runs \(offset + 1)-\(offset + runs.count) of \(total)"
        }
        return table.render() + footer + "\n"
    }
}
