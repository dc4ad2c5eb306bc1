import ArgumentParser
import DEECore
import Foundation

/// Why a subcommand failed, and the exit code scripts test: 1 a command error (the engine answered with a SPEC
/// error code), 2 a usage error, 3 no reply in time or Redis unreachable.
struct CLIError: Error, Sendable, CustomStringConvertible {
    enum Kind: Sendable, Equatable {
        /// The engine answered with an error (`code` is its SPEC 5 code), or its reply made no sense.
        case command
        /// The command line cannot be run as given.
        case usage
        /// No reply within `--timeout`.
        case timeout
        /// Redis could not be reached.
        case unreachable
    }

    let kind: Kind
    /// The SPEC error code for `.command` (`not_found`, …); `usage`, `timeout` or `unreachable` otherwise.
    let code: String
    let field: String?
    let message: String

    init(_ kind: Kind, code: String? = nil, field: String? = nil, _ message: String) {
        self.kind = kind
        self.code = code ?? Self.defaultCode(kind)
        self.field = field
        self.message = message
    }

    static func usage(_ message: String) -> CLIError { CLIError(.usage, message) }

    private static func defaultCode(_ kind: Kind) -> String {
        switch kind {
        case .command: return "internal"
        case .usage: return "usage"
        case .timeout: return "timeout"
        case .unreachable: return "unreachable"
        }
    }

    var exitCode: Int32 {
        switch kind {
        case .command: return 1
        case .usage: return 2
        case .timeout, .unreachable: return 3
        }
    }

    /// `{"error": code, "message": …, "field": …}`, what `--json` writes to stderr.
    var json: JSONValue {
        var o: [String: JSONValue] = ["error": .string(code), "message": .string(message)]
        if let field { o["field"] = .string(field) }
        return .object(o)
    }

    var description: String {
        let at = field.map { " (field \($0))" } ?? ""
        return "\(code): \(message)\(at)"
    }

    /// Writes the error to stderr, as JSON with `--json`, and returns the exit code to throw.
    func report(json asJSON: Bool) -> ExitCode {
        Output.standardError(asJSON ? json.canonical + "\n" : "dee: error: \(description)\n")
        return ExitCode(exitCode)
    }
}

/// The process-wide exit code policy, applied in `Dee.main()`: ArgumentParser's own usage failures (exit 64) become
/// exit 2, and with `--json` on the command line they are a JSON object on stderr too.
enum ExitPolicy {
    static let usage: Int32 = 2

    static func exit(_ error: any Error, arguments: [String]) -> Never {
        let code = Dee.exitCode(for: error)
        if code == .validationFailure {
            if arguments.contains("--json") {
                let message = Dee.message(for: error)
                Output.standardError(CLIError.usage(message).json.canonical + "\n")
            } else {
                Output.standardError(Dee.fullMessage(for: error) + "\n")
            }
            Foundation.exit(usage)
        }
        Dee.exit(withError: error)
    }
}
