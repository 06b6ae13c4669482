//! rvs-testkit
