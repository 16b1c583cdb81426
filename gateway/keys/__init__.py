"""XMLDSig profile, trust chains, CRLs, the enrolment registry and the gateway's key ring."""
