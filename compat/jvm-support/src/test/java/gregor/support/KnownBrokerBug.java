package gregor.support;

import java.lang.annotation.ElementType;
import java.lang.annotation.Retention;
import java.lang.annotation.RetentionPolicy;
import java.lang.annotation.Target;
import java.lang.reflect.Method;

import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.api.extension.ExtensionContext;
import org.junit.jupiter.api.extension.TestExecutionExceptionHandler;
import org.opentest4j.TestAbortedException;

/**
 * An expected failure: a test showing a Gregor bug that is reported (in /tmp/gregor-bugs/) but not
 * fixed yet. If the test fails it is aborted (Surefire: skipped) and the results JSON records the
 * feature as "fail" with this reason; if it passes, the bug is fixed and it counts as a pass.
 */
@Retention(RetentionPolicy.RUNTIME)
@Target(ElementType.METHOD)
@ExtendWith(KnownBrokerBug.Handler.class)
public @interface KnownBrokerBug {
    String value();

    String PREFIX = "known broker bug: ";

    final class Handler implements TestExecutionExceptionHandler {
        @Override
        public void handleTestExecutionException(ExtensionContext ctx, Throwable t) throws Throwable {
            Method m = ctx.getRequiredTestMethod();
            KnownBrokerBug bug = m.getAnnotation(KnownBrokerBug.class);
            if (bug == null || t instanceof TestAbortedException) {
                throw t;
            }
            TestAbortedException e = new TestAbortedException(PREFIX + bug.value() + " [" + t + "]", t);
            throw e;
        }
    }
}
