# The roles publishers and the pruner assume, each with its one policy.

locals {
  prune_principals = var.prune_principals == null ? var.publisher_principals : var.prune_principals

  # trust builds an assume-role policy document for a principals object.
  trust = {
    for role, p in { publisher = var.publisher_principals, prune = local.prune_principals } : role => jsonencode({
      Version = "2012-10-17"
      Statement = concat(
        length(p.aws_arns) == 0 ? [] : [
          {
            Sid       = "TrustedAWSPrincipals"
            Effect    = "Allow"
            Principal = { AWS = p.aws_arns }
            Action    = "sts:AssumeRole"
          },
        ],
        p.github_oidc_provider_arn == null ? [] : [
          {
            Sid       = "GitHubActions"
            Effect    = "Allow"
            Principal = { Federated = p.github_oidc_provider_arn }
            Action    = "sts:AssumeRoleWithWebIdentity"
            Condition = {
              StringEquals = { "token.actions.githubusercontent.com:aud" = "sts.amazonaws.com" }
              StringLike   = { "token.actions.githubusercontent.com:sub" = p.github_subjects }
            }
          },
        ],
      )
    }) if p != null
  }
}

resource "aws_iam_role" "publisher" {
  count                = var.publisher_principals == null ? 0 : 1
  name                 = "${var.name}-publisher"
  description          = "Publishes images into the ${var.name} registry"
  assume_role_policy   = local.trust.publisher
  permissions_boundary = var.permissions_boundary_arn
  tags                 = var.tags
}

resource "aws_iam_role_policy_attachment" "publisher" {
  count      = length(aws_iam_role.publisher)
  role       = aws_iam_role.publisher[0].name
  policy_arn = aws_iam_policy.publisher.arn
}

resource "aws_iam_role" "prune" {
  count                = local.prune_principals == null ? 0 : 1
  name                 = "${var.name}-prune"
  description          = "Prunes the ${var.name} registry"
  assume_role_policy   = local.trust.prune
  permissions_boundary = var.permissions_boundary_arn
  tags                 = var.tags
}

resource "aws_iam_role_policy_attachment" "prune" {
  count      = length(aws_iam_role.prune)
  role       = aws_iam_role.prune[0].name
  policy_arn = aws_iam_policy.prune.arn
}
