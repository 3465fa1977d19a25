//! Compile errors a user sees, checked against the reviewed `.stderr` files, and the
//! shapes that must compile.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.pass("tests/ui/pass/*.rs");
    t.compile_fail("tests/ui/fail/*.rs");
}
