import NIOCore

/// A task executor that runs a task's jobs on one NIO event loop, for
/// `Task(executorPreference:)`: the task starts on the loop without waking another thread,
/// resumes there after each await, and hands its answer to the connection without a hop.
///
/// Only for work that never blocks (`RouteHandler.asyncOnEventLoop`): every job it runs holds
/// up the connections of its loop.
final class EventLoopTaskExecutor: TaskExecutor {
    let eventLoop: any EventLoop

    init(_ eventLoop: any EventLoop) {
        self.eventLoop = eventLoop
    }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        eventLoop.execute {
            job.runSynchronously(on: self.asUnownedTaskExecutor())
        }
    }
}
