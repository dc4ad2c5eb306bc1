import DEEClient
import DEECore
import Redis

/// One CLI invocation's connection to the engine: the client library's ``DEEEngine``, with its failures turned
/// into ``CLIError``s (and so into exit codes). The only file that talks to DEEClient.
struct Session: Sendable {
    let engine: DEEEngine
    let redis: RedisConfiguration
    let prefix: String

    static func open(_ options: ClientOptions) async throws(CLIError) -> Session {
        let redis: RedisConfiguration
        do {
            redis = try options.connection.redisConfiguration()
        } catch {
            throw CLIError.usage("\(error)")
        }
        do {
            let engine = try await DEEEngine(
                redis: redis, prefix: options.connection.prefix, timeout: options.timeoutDuration)
            return Session(engine: engine, redis: redis, prefix: options.connection.prefix)
        } catch {
            throw Self.failure(error)
        }
    }

    /// Sends a command by its SPEC 6 type and wire fields and returns its SPEC 6 result.
    func call(_ type: String, _ fields: [String: String] = [:], requestId: String? = nil)
        async throws(CLIError) -> JSONValue
    {
        do {
            return try await engine.command(type, fields, requestId: requestId)
        } catch {
            throw Self.failure(error)
        }
    }

    func close() async {
        await engine.close()
    }

    static func failure(_ error: DEEClientError) -> CLIError {
        switch error.kind {
        case .command:
            return CLIError(.command, code: error.code ?? "internal", field: error.field, error.message)
        case .timeout:
            return CLIError(.timeout, error.message)
        case .unreachable:
            return CLIError(.unreachable, error.message)
        case .protocolError:
            return CLIError(.command, code: "protocol", error.message)
        case .cancelled:
            return CLIError(.timeout, code: "cancelled", error.message)
        }
    }
}
