//! Fuzz target `gitconfig`: see `fixer::fuzzing::gitconfig` for the input format and
//! the properties checked.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Err(violation) = fixer::fuzzing::gitconfig(data) {
        panic!("gitconfig: {violation}");
    }
});
