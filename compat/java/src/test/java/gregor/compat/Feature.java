package gregor.compat;

import java.lang.annotation.ElementType;
import java.lang.annotation.Retention;
import java.lang.annotation.RetentionPolicy;
import java.lang.annotation.Target;

/**
 * The compat-matrix rows (scripts/matrix.py FEATURES) a test covers. A feature covered by several
 * tests is "fail" if any of them failed (see {@link FeatureResultsListener}).
 */
@Retention(RetentionPolicy.RUNTIME)
@Target(ElementType.METHOD)
public @interface Feature {
    String[] value();
}
