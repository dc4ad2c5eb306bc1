import ArgumentParser
import DEECore

/// `dee plan register FILE | get ID [--version N] | list`.
struct PlanCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "plan",
        abstract: "Register, read and list plans.",
        discussion: """
            Examples:
              dee plan register welcome.json
              dee plan get welcome --version 2
              dee plan list --json
            """,
        subcommands: [Register.self, Get.self, List.self])
}

extension PlanCommand {
    struct Register: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Register a plan (SPEC 2's JSON format); the same content as the latest version changes nothing.",
            discussion: """
                Example:
                  $ dee plan register welcome.json
                  registered plan welcome, version 1
                """)

        @Argument(help: "The plan's JSON file, or - for stdin.")
        var file: String

        @OptionGroup var options: ClientOptions

        func validate() throws {
            // stdin can be read once: it is checked when it is read.
            if file != "-" { _ = try plan() }
        }

        func plan() throws(ValidationError) -> JSONValue {
            try JSONArgument.object(text: try JSONArgument.file(file, name: "the plan file"), name: "the plan file")
        }

        func run() async throws {
            let plan = try plan()
            try await options.run { session throws(CLIError) in
                let result = try await session.call("registerPlan", ["plan": plan.canonical])
                options.emit(result) { r in
                    let created = r["created"].bool ?? false
                    var text = created
                        ? "registered plan \(r["planId"].cell), version \(r["version"].cell)\n"
                        : "plan \(r["planId"].cell) is unchanged: version \(r["version"].cell) has this content\n"
                    for warning in r["warnings"].array ?? [] { text += "warning: \(warning.cell)\n" }
                    return text
                }
            }
        }
    }

    struct Get: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show a plan: its latest version, or --version N.",
            discussion: """
                Example:
                  dee plan get welcome
                  dee plan get welcome --version 1 --json > welcome-v1.json
                """)

        @Argument(help: "The plan id.")
        var id: String

        @Option(help: "The version (default: the latest).")
        var version: Int?

        @OptionGroup var options: ClientOptions

        func validate() throws {
            if let version, version < 1 { throw ValidationError("--version must be at least 1") }
        }

        func run() async throws {
            var fields = ["planId": id]
            if let version { fields["version"] = String(version) }
            try await options.run { session throws(CLIError) in
                let plan = try await session.call("getPlan", fields)
                options.emit(plan, PlanView.render)
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List the registered plans.",
            discussion: """
                Example:
                  $ dee plan list
                  PLAN     NAME     LATEST
                  welcome  Welcome  1
                """)

        @OptionGroup var options: ClientOptions

        func run() async throws {
            try await options.run { session throws(CLIError) in
                let plans = try await session.call("listPlans")
                options.emit(plans) { result in
                    var table = TextTable(headers: ["PLAN", "NAME", "LATEST"])
                    let items = (result.array ?? []).sorted { $0["planId"].cell < $1["planId"].cell }
                    for p in items { table.append([p["planId"].cell, p["name"].cell, p["latestVersion"].cell]) }
                    return items.isEmpty ? "no plans registered\n" : table.render()
                }
            }
        }
    }
}

/// A plan at a terminal: its header, then one line per step.
enum PlanView {
    static func render(_ plan: JSONValue) -> String {
        var b = KeyValueBlock()
        b.append("plan", "\(plan["id"].cell) v\(plan["version"].cell)")
        b.append("name", plan["name"].cell)
        if let exitOn = plan["exitOn"].array, !exitOn.isEmpty {
            b.append("exitOn", exitOn.map(\.cell).joined(separator: ", "))
        }
        let steps = plan["steps"].array ?? []
        var table = TextTable(headers: ["STEP", "TYPE", "DOES", "THEN"], maxWidth: 60)
        for (i, step) in steps.enumerated() {
            let following = i + 1 < steps.count ? steps[i + 1]["id"].cell : "-"
            table.append([step["id"].cell, step["type"].cell, does(step), then(step, following: following)])
        }
        return b.render() + "\n" + table.render()
    }

    static func does(_ step: JSONValue) -> String {
        switch step["type"].string {
        case "action":
            var text = step["action"].cell
            if let params = step["params"].object, !params.isEmpty { text += " " + step["params"].canonical }
            if step["await"].bool == true {
                text += " (await \(step["timeoutTicks"].cell) ticks, \(step["retries"].int ?? 0) retries)"
            }
            return text
        case "wait": return "\(step["ticks"].cell) ticks"
        case "waitForSignal":
            let timeout = step["timeoutTicks"].isNull ? "no timeout" : "timeout \(step["timeoutTicks"].cell) ticks"
            return "signal \(step["signal"].cell), \(timeout)"
        case "branch": return "\((step["cases"].array ?? []).count) cases"
        case "end": return "outcome \(step["outcome"].isNull ? "completed" : step["outcome"].cell)"
        default: return ""
        }
    }

    static func then(_ step: JSONValue, following: String) -> String {
        let next = step["next"].string ?? following
        switch step["type"].string {
        case "end": return "-"
        case "waitForSignal":
            return "signal → \(step["onSignal"].string ?? next), timeout → \(step["onTimeout"].string ?? next)"
        case "branch":
            let cases = (step["cases"].array ?? []).map { $0["next"].cell }
            return (cases + ["default → \(step["default"].cell)"]).joined(separator: ", ")
        case "action" where !step["onFailure"].isNull:
            return "\(next), failure → \(step["onFailure"].cell)"
        default: return next
        }
    }
}
