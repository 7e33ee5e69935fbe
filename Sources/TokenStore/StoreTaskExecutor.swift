/// The task executor a store's own unstructured tasks prefer.
///
/// A request handler that runs on its connection's event loop (`Task(executorPreference:)`)
/// binds its executor here. The tasks a store starts for it (a batch leader's task, an
/// operation's deadline) then run their jobs on the same loop: unstructured tasks do not
/// inherit an executor preference, but they do inherit task-local values. Without it each
/// such task starts on the cooperative pool, and one refresh crosses threads several times.
public enum StoreTaskExecutor {
    @TaskLocal public static var preferred: (any TaskExecutor)?
}
