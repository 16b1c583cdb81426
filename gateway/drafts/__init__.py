"""Bank drafts (银行汇票): the register's rules, the Code, the INTRA documents.

The gateway is the issuing bank's draft system (docs/bank-drafts.md §1).  This
package is its self-contained core, sans-IO: draft numbers and amount text,
the ExpiryDate rule, the Code (密押) and its sealed keys, the register's state
machine and the presentment checks, and the ``urn:clearing:1`` Documents.
The request path, the journal and the INTRA link use it; it uses none of them.
"""
