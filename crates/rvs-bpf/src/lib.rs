//! rvs-bpf: loading rvs's BPF programs and maps with aya, and the few system calls around them
//! that no safe crate wraps. The one crate of the workspace where `unsafe` is allowed; every
//! block carries its SAFETY comment.
