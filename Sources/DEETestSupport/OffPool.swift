import Foundation
import Testing

/// A test trait for tests that block their thread (a synchronous Redis client, a `dee` process waited for, a
/// cluster started, `usleep`): they run on threads of their own instead of the cooperative pool.
///
/// `swift test` runs every suite of the package in one process, in parallel, and the cooperative pool has one thread
/// per core (two in CI). A synchronous test runs on a pool thread and blocks it; two of them at once stopped every
/// in-process engine of the other suites, and CI saw a client call time out after 20 s that takes 0.3 s alone
/// (ClientBehaviourTests, with CLITests beside it: 8 s locally). Every suite whose tests block is marked
/// `@Suite(.offPool)`; the engines and async tests keep the pool.
public struct OffPool: SuiteTrait, TestTrait, TestScoping {
    public var isRecursive: Bool { true }

    public func provideScope(
        for test: Test, testCase: Test.Case?, performing function: @Sendable () async throws -> Void
    ) async throws {
        try await withTaskExecutorPreference(ThreadPerJobExecutor.shared) { try await function() }
    }
}

extension Trait where Self == OffPool {
    /// Runs each test on threads of its own, never on the cooperative pool (see ``OffPool``).
    public static var offPool: Self { OffPool() }
}

/// A task executor that runs each job on a new thread: a job may block as long as it likes without taking a
/// thread from anybody else. Fine for tests (a blocking test has few jobs); never for the engine.
public final class ThreadPerJobExecutor: TaskExecutor {
    public static let shared = ThreadPerJobExecutor()

    public func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        let executor = asUnownedTaskExecutor()
        let thread = Thread { job.runSynchronously(on: executor) }
        thread.stackSize = 4 << 20
        thread.start()
    }
}

/// Runs a blocking body on a thread of its own and waits for it without holding a pool thread.
public func offPool<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        let thread = Thread { continuation.resume(with: Result { try body() }) }
        thread.stackSize = 4 << 20
        thread.start()
    }
}
