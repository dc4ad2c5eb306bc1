import DEEStore
import Redis
import Testing

@testable import DEEService

/// The router's decisions (SPEC 9), without Redis: who routes, in which order, and when one by one.
@Suite struct RouterStateMachineTests {
    @Test func aStandbyOnlyTriesToTakeTheLease() {
        let m = RouterStateMachine()
        #expect(m.next() == .acquireLease)
        #expect(m.epoch == nil)
    }

    @Test func aNewHolderClaimsThenDrainsOneByOneThenReadsNew() {
        var m = RouterStateMachine()
        m.leaseAcquired(epoch: 7)
        #expect(m.next() == .claimPending(epoch: 7))
        m.claimed()
        #expect(m.next() == .readPending(epoch: 7, after: "0", singly: true))
        m.pendingRouted(last: "5-0")
        #expect(m.next() == .readPending(epoch: 7, after: "5-0", singly: false), "only the first batch goes one by one")
        m.pendingRouted(last: "9-0")
        #expect(m.next() == .readPending(epoch: 7, after: "9-0", singly: false))
        m.pendingRouted(last: nil)
        #expect(m.next() == .readNew(epoch: 7), "nothing new is read while anything is pending")
    }

    @Test(arguments: [Failure.transient, Failure.entry])
    func afterAFailureThePendingEntriesGoFirst(_ failure: Failure) {
        var m = RouterStateMachine()
        m.leaseAcquired(epoch: 1)
        m.claimed()
        m.pendingRouted(last: nil)
        m.failed(failure)
        #expect(m.next() == .readPending(epoch: 1, after: "0", singly: failure == .entry))
    }

    @Test func aTransientFailureWhileGoingOneByOneStaysOneByOne() {
        var m = RouterStateMachine()
        m.leaseAcquired(epoch: 1)
        m.claimed()
        m.failed(.transient)
        #expect(m.next() == .readPending(epoch: 1, after: "0", singly: true))
    }

    @Test func aFailureWhileClaimingClaimsAgain() {
        var m = RouterStateMachine()
        m.leaseAcquired(epoch: 3)
        m.failed(.transient)
        #expect(m.next() == .claimPending(epoch: 3))
    }

    @Test func aLostLeaseStandsBy() {
        var m = RouterStateMachine()
        m.leaseAcquired(epoch: 3)
        m.claimed()
        m.pendingRouted(last: nil)
        m.leaseLost()
        #expect(m.next() == .acquireLease)
        m.failed(.entry)
        #expect(m.next() == .acquireLease, "a standby has nothing to retry")
        m.pendingRouted(last: "1-0")
        #expect(m.next() == .acquireLease)
    }

    @Test func strayPendingEntriesAreRoutedBeforeNewOnes() {
        var m = RouterStateMachine()
        m.leaseAcquired(epoch: 2)
        m.claimed()
        m.pendingRouted(last: nil)
        m.strayPendingFound()
        #expect(m.next() == .readPending(epoch: 2, after: "0", singly: false))
    }

    @Test func anEntryIsRoutedOnlyWhenEveryInboxHasIt() {
        #expect(RoutedEntry.decide([]) == .routed, "answered by the router: no inbox")
        #expect(RoutedEntry.decide([(0, .appended), (1, .present)]) == .routed)
        #expect(RoutedEntry.decide([(0, .appended), (1, .gap), (2, .gap)]) == .gap(partitions: [1, 2]))
    }

    @Test(arguments: [(1, AttemptDecision.attempt), (5, .attempt), (6, .poison), (100, .poison)])
    func anEntryIsPoisonAfterItsAttempts(_ attempts: Int, _ expected: AttemptDecision) {
        #expect(AttemptDecision.decide(attempts: attempts, maxAttempts: 5) == expected)
    }

    @Test(arguments: [
        (RedisError(.connection, "connection reset"), Failure.transient),
        (RedisError(.server, "BUSY Redis is busy running a script"), .transient),
        (RedisError(.server, "LOADING Redis is loading the dataset in memory"), .transient),
        (RedisError(.server, "OOM command not allowed when used memory > 'maxmemory'."), .transient),
        (RedisError(.server, "ERR Error running script: @user_script:12: -OOM command not allowed when used memory"), .transient),
        (RedisError(.server, "WRONGTYPE Operation against a key holding the wrong kind of value"), .entry),
        (RedisError(.server, "ERR unknown command"), .entry),
    ])
    func failuresOfTheEnvironmentAreNotTheEntrys(_ error: RedisError, _ expected: Failure) {
        #expect(Failure.classify(error) == expected)
    }

    @Test func aLostLeaseIsNotTheEntrysFault() {
        #expect(Failure.classify(Fenced()) == .transient)
    }

    @Test func backoffGrowsToFiveSeconds() {
        #expect(Backoff.delay(failures: 1) == .milliseconds(100))
        #expect(Backoff.delay(failures: 2) == .milliseconds(200))
        #expect(Backoff.delay(failures: 100) == .milliseconds(5000))
    }
}
